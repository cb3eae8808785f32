"""Fixtures shared across the suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collector.store import Store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """An embedded store of this test module's own (schema left to the code under test)."""
    s = Store(f"chdb://{tmp_path_factory.mktemp('store')}")
    yield s
    s.close()
