"""The spool on a genuinely small filesystem (a 2 MiB tmpfs mounted by the test): appending never
fails, the oldest results are dropped and counted, the condition is logged (rate-limited), and
acks free space even when the disk is full (issue 11 item 4)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import pytest

from probe_agent.spool import Spool
from probenet.v1.probe_pb2 import FailureClass, Outcome, ProbeResult
from tests.conftest import SMALL_DISK_BYTES as VOLUME


def _result(i: int) -> ProbeResult:
    return ProbeResult(
        check_id=f"check-{i % 50}",
        probe="http",
        target=f"https://shop-{i % 50}.example/",
        outcome=Outcome.OUTCOME_FAILED,
        failure_class=FailureClass.TCP_REFUSED,
        error=f"connect to 192.0.2.{i % 250}:443 refused " + "x" * 300,
    )


def _used(directory: Path) -> int:
    st = os.statvfs(directory)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _fill(spool: Spool, n: int, start: int = 0) -> list[int]:
    return [spool.append(_result(start + i)) for i in range(n)]


def test_full_disk_drops_oldest_counts_and_keeps_storing(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(small_disk / "spool")  # max_bytes (512 MiB) far above the volume
    with caplog.at_level(logging.WARNING):
        seqs = _fill(spool, 20_000)
    assert seqs == list(range(1, 20_001))
    stored = spool.read_after(0, 100_000)
    print(
        f"\n2 MiB volume after 20000 results: {spool.depth} kept, {spool.dropped} dropped, "
        f"spool files {spool.file_bytes} bytes, volume used {_used(small_disk)} bytes"
    )
    assert 1000 < spool.depth == len(stored) < 20_000
    assert spool.dropped == 20_000 - spool.depth  # nothing was sent: every drop is a loss
    assert [r.seq for r in stored] == list(range(20_001 - spool.depth, 20_001))  # the newest kept
    assert spool.full and spool.write_errors == 0
    assert spool.file_bytes <= VOLUME
    full_lines = [r for r in caplog.records if "spool" in r.getMessage() and "full" in r.getMessage()]
    assert 1 <= len(full_lines) <= 3, [r.getMessage() for r in full_lines]  # rate-limited, not per result

    spool.mark_sent(20_000)
    spool.ack(20_000)
    assert spool.depth == 0
    dropped = spool.dropped
    _fill(spool, 1000, start=20_000)
    assert spool.depth == 1000 and spool.dropped == dropped
    spool.close()
    again = Spool(small_disk / "spool")
    assert again.depth == 1000 and again.dropped == dropped and again.last_seq == 21_000
    again.close()


def test_max_bytes_bounds_the_spool_before_the_disk_does(small_disk: Path) -> None:
    spool = Spool(small_disk / "spool", max_bytes=1 << 20)
    sizes = []
    for chunk in range(20):
        _fill(spool, 1000, start=chunk * 1000)
        sizes.append(spool.file_bytes)
    print(f"\nmax_bytes 1 MiB: spool files peaked at {max(sizes)} bytes, {spool.depth} results kept")
    assert max(sizes) <= (1 << 20) * 1.05
    assert spool.write_errors == 0 and spool.dropped == 20_000 - spool.depth > 0
    assert os.statvfs(small_disk).f_bavail > 0
    spool.close()


def test_disk_filled_by_someone_else_spool_keeps_going_and_acks_free_space(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(small_disk / "spool")
    _fill(spool, 500)
    filler = _fill_disk(small_disk)
    spool.mark_sent(500)
    spool.ack(500)  # the disk is full to the last block: the delete still goes through
    assert spool.depth == 0
    assert "disk full on acknowledging" in caplog.text  # it was, and the reserve made room
    seqs = _fill(spool, 300, start=500)
    assert seqs == list(range(501, 801))  # no exception, numbering goes on
    assert spool.depth + spool.dropped == 300
    filler.unlink()
    before = spool.dropped
    _fill(spool, 200, start=800)
    assert spool.dropped == before and spool.depth >= 200
    spool.close()


def _fill_disk(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while True:
            os.write(fd, b"\0" * 4096)
    os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return filler


def test_a_restart_on_a_disk_without_a_free_block_opens_and_recovers(small_disk: Path) -> None:
    """Before, a restart did not help: the spool could not even be opened."""
    spool = Spool(small_disk / "spool")
    _fill(spool, 500)
    spool.close()
    (small_disk / "spool" / "spool.reserve").unlink()  # spent earlier, not yet restored
    filler = _fill_disk(small_disk)
    again = Spool(small_disk / "spool")
    assert again.depth == 500
    assert _fill(again, 50, start=500) == list(range(501, 551))  # no exception: counted instead
    assert again.dropped == 50 and again.depth == 500
    filler.unlink()
    _fill(again, 50, start=550)
    assert again.depth == 550 and again.dropped == 50
    assert (small_disk / "spool" / "spool.reserve").exists()  # restored once there was room
    again.close()
