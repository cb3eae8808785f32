"""Fixtures shared across the suite."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store import Store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """An embedded store of this test module's own (schema left to the code under test)."""
    s = Store(f"chdb://{tmp_path_factory.mktemp('store')}")
    yield s
    s.close()


SMALL_DISK_BYTES = 2 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A genuinely small filesystem: a 2 MiB tmpfs mounted for the test, unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a 2 MiB tmpfs needs root (CI runs as root)")
    mount = tmp_path / "vol"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_BYTES}", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
