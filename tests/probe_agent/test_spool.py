"""The spool: sequence numbers survive restarts, acks delete, a full spool drops the oldest and counts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from probe_agent.spool import Spool
from probenet.v1.probe_pb2 import ProbeResult


def _fill(spool: Spool, n: int) -> list[int]:
    return [spool.append(ProbeResult(check_id=f"c{i}")) for i in range(n)]


def test_sequence_numbers_and_unacked_results_survive_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert _fill(spool, 5) == [1, 2, 3, 4, 5]
    spool.ack(3)
    spool.close()
    again = Spool(tmp_path)
    assert again.depth == 2 and again.acked_seq == 3
    assert [r.seq for r in again.read_after(again.acked_seq, 10)] == [4, 5]
    assert [r.check_id for r in again.read_after(0, 10)] == ["c3", "c4"]
    assert _fill(again, 1) == [6]
    again.close()


def test_seq_never_repeats_even_when_everything_was_acked(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 3)
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
    assert [r.seq for r in spool.read_after(0, 10)] == [3, 4, 5]
    spool.close()
    again = Spool(tmp_path, max_results=3)
    assert again.dropped == 2
    assert _fill(again, 1) == [6]
    again.close()


def test_ack_above_own_seq_moves_numbering_past_it(tmp_path: Path) -> None:
    """A lost spool directory must not make new results look like replays of stored ones."""
    spool = Spool(tmp_path)
    spool.ack(500)  # the collector's first ack: it already stores up to 500 for this agent
    assert _fill(spool, 2) == [501, 502]
    spool.close()
    assert Spool(tmp_path).last_seq == 502


def test_stale_ack_is_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _fill(spool, 4)
    spool.ack(3)
    spool.ack(1)
    assert spool.acked_seq == 3 and spool.depth == 1
    spool.close()
    with sqlite3.connect(tmp_path / "spool.db") as db:
        assert db.execute("SELECT count(*) FROM results").fetchone() == (1,)
