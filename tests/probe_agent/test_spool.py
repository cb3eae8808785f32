"""The spool: sequence numbers survive restarts, acks delete only what was sent, a full spool drops
the oldest and counts exactly what was lost, an unusable file is moved aside."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from probe_agent.spool import MAX_ADOPTED_SEQ, Spool
from probenet.v1.probe_pb2 import ProbeResult

U64_MAX = (1 << 64) - 1


def _fill(spool: Spool, n: int) -> list[int]:
    return [spool.append(ProbeResult(check_id=f"c{i}")) for i in range(n)]


def _seqs(spool: Spool) -> list[int]:
    return [r.seq for r in spool.read_after(0, 10_000)]


def test_sequence_numbers_and_unacked_results_survive_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert _fill(spool, 5) == [1, 2, 3, 4, 5]
    spool.mark_sent(5)
    spool.ack(3)
    spool.close()
    again = Spool(tmp_path)
    assert again.depth == 2 and again.acked_seq == 3 and again.sent_seq == 5
    assert [r.seq for r in again.read_after(again.acked_seq, 10)] == [4, 5]
    assert [r.check_id for r in again.read_after(0, 10)] == ["c3", "c4"]
    assert _fill(again, 1) == [6]
    again.close()


def test_seq_never_repeats_even_when_everything_was_acked(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 3)
    spool.mark_sent(3)
    spool.ack(3)
    spool.close()
    again = Spool(tmp_path)
    assert again.depth == 0
    assert _fill(again, 1) == [4]
    again.close()


def test_full_spool_drops_oldest_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_results=3)
    _fill(spool, 5)
    assert spool.depth == 3 and spool.dropped == 2
    assert _seqs(spool) == [3, 4, 5]
    spool.close()
    again = Spool(tmp_path, max_results=3)
    assert again.dropped == 2
    assert _fill(again, 1) == [6]
    again.close()


def test_lost_spool_renumbers_its_unsent_results_past_what_the_collector_stores(tmp_path: Path) -> None:
    """A lost spool directory must not make new results look like replays of stored ones, and the
    results gathered before the first ack must not be deleted as if the collector had them."""
    spool = Spool(tmp_path)
    assert _fill(spool, 3) == [1, 2, 3]
    spool.adopt(500)  # the collector's first ack: it already stores up to 500 for this agent
    assert _seqs(spool) == [501, 502, 503] and spool.depth == 3
    assert [r.check_id for r in spool.read_after(0, 10)] == ["c0", "c1", "c2"]
    assert _fill(spool, 2) == [504, 505]
    spool.close()
    again = Spool(tmp_path)
    assert again.last_seq == 505 and again.depth == 5
    again.close()


def test_stale_ack_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 4)
    spool.mark_sent(4)
    spool.ack(3)
    spool.ack(1)
    assert spool.acked_seq == 3 and spool.depth == 1
    spool.close()
    with sqlite3.connect(tmp_path / "spool.db") as db:
        assert db.execute("SELECT count(*) FROM results").fetchone() == (1,)


@pytest.mark.parametrize("ack", [U64_MAX, 1 << 63, 10_000, 0])
def test_any_ack_value_keeps_unsent_results(tmp_path: Path, ack: int) -> None:
    """The collector's ack is trusted only up to what this agent sent (issue 11 item 3)."""
    spool = Spool(tmp_path)
    _fill(spool, 10)
    spool.mark_sent(4)
    assert spool.ack(ack) == min(ack, 4)
    assert _seqs(spool) == list(range(min(ack, 4) + 1, 11))
    spool.ack(1)  # going backwards (or staying at 0) changes nothing
    assert spool.acked_seq == (min(ack, 4) or 1)
    assert _fill(spool, 1) == [11]
    spool.close()


@pytest.mark.parametrize("hwm", [U64_MAX, 1 << 63, MAX_ADOPTED_SEQ + 1])
def test_absurd_first_ack_neither_crashes_nor_deletes(
    tmp_path: Path, hwm: int, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 6)
    spool.mark_sent(2)
    spool.adopt(hwm)
    assert _seqs(spool) == [3, 4, 5, 6]  # the sent ones are acknowledged, nothing unsent is gone
    assert _fill(spool, 1) == [7]
    assert "beyond any seq this agent numbers" in caplog.text
    spool.close()


def test_results_dropped_in_flight_count_only_when_the_collector_never_got_them(tmp_path: Path) -> None:
    """dropped_results counted results that were sent and later acknowledged (issue 11 item 7)."""
    spool = Spool(tmp_path, max_results=5)
    _fill(spool, 5)
    spool.mark_sent(5)  # all five on the wire, none acknowledged yet
    _fill(spool, 3)  # the spool is full: seqs 1-3 are dropped while in flight
    assert _seqs(spool) == [4, 5, 6, 7, 8] and spool.depth == 5
    assert spool.dropped == 0
    spool.ack(2)  # 1 and 2 arrived after all
    assert spool.dropped == 0
    spool.close()
    again = Spool(tmp_path, max_results=5)  # a restart keeps the doubt
    again.adopt(2)  # the next stream: stored up to 2, so seq 3 was lost
    assert again.dropped == 1
    assert _seqs(again) == [4, 5, 6, 7, 8]
    again.close()


def test_corrupt_spool_is_moved_aside_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 3)
    spool.close()
    path = tmp_path / "spool.db"
    data = bytearray(path.read_bytes())
    data[:100] = b"\x00garbage" * 12 + b"\x00" * 4  # the header: SQLite no longer sees a database
    path.write_bytes(bytes(data))
    (tmp_path / "spool.db-wal").unlink(missing_ok=True)
    with caplog.at_level(logging.ERROR):
        again = Spool(tmp_path)
    aside = list(tmp_path.glob("spool.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == bytes(data)
    assert str(path) in caplog.text and str(aside[0]) in caplog.text
    assert again.depth == 0 and again.resets == 1
    assert _fill(again, 1) == [1]
    again.close()
    assert Spool(tmp_path).resets == 1


def test_zero_length_spool_is_moved_aside_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "spool.db").write_bytes(b"")
    with caplog.at_level(logging.ERROR):
        spool = Spool(tmp_path)
    assert "is empty (0 bytes)" in caplog.text and "unknown number" in caplog.text
    assert len(list(tmp_path.glob("spool.db.corrupt-*"))) == 1
    assert spool.resets == 1
    spool.adopt(40)  # the collector knows this agent: numbering continues past it
    assert _fill(spool, 1) == [41]
    spool.close()


def test_corruption_found_while_running_starts_over_and_counts_what_it_held(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 4)
    spool._db.close()
    # What SQLite raises when it meets a malformed page mid-run.
    error = sqlite3.DatabaseError("database disk image is malformed")
    error.sqlite_errorname = "SQLITE_CORRUPT"  # type: ignore[attr-defined]

    class Broken:
        in_transaction = False

        def execute(self, *args: object) -> None:
            raise error

        def close(self) -> None:
            pass

    spool._db = Broken()  # type: ignore[assignment]
    (tmp_path / "spool.db").write_bytes(b"not a database at all" * 100)
    assert _fill(spool, 1) == [5]  # stored in the fresh spool
    assert spool.dropped == 4 and spool.resets == 1 and spool.depth == 1
    assert "its 4 unacknowledged results are lost" in caplog.text
    spool.close()


def test_spool_with_garbage_pages_mid_file_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    for i in range(3000):
        spool.append(ProbeResult(check_id=f"c{i}", error="e" * 300))
    spool.close()
    with (tmp_path / "spool.db").open("r+b") as f:
        f.seek(4096 * 100)
        f.write(b"\xa5" * 4096 * 20)
    again = Spool(tmp_path)  # not a traceback: a logged reset and a working spool
    assert "database disk image is malformed" in caplog.text and "moved aside" in caplog.text
    assert again.resets == 1 and again.depth == 0
    assert len(list(tmp_path.glob("spool.db.corrupt-*"))) >= 1
    again.close()
