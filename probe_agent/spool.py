"""On-disk spool: every result is written here before it is sent, and deleted once acknowledged.

SQLite in WAL mode: one file, atomic appends, survives kill -9. The spool assigns each result
its per-agent sequence number, which therefore survives restarts. When the spool is full the
oldest results are dropped and counted (never silently).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from probenet.v1.probe_pb2 import ProbeResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Spool:
    def __init__(self, directory: str | Path, max_results: int = 1_000_000) -> None:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path / "spool.db", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.max_results = max_results
        self.acked_seq = self._meta("acked_seq")
        self.dropped = self._meta("dropped")
        top = self._db.execute("SELECT max(seq), count(*) FROM results").fetchone()
        self.last_seq = max(top[0] or 0, self.acked_seq, self._meta("last_seq"))
        self.depth: int = top[1]

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def append(self, result: ProbeResult) -> int:
        """Assign the next sequence number to `result`, store it, and return the number."""
        self.last_seq += 1
        result.seq = self.last_seq
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO results (seq, data) VALUES (?, ?)", (result.seq, result.SerializeToString())
            )
            self.depth += 1
            if self.depth > self.max_results:
                self._drop_oldest(self.depth - self.max_results)
        return result.seq

    def _drop_oldest(self, count: int) -> None:
        self._db.execute(
            "DELETE FROM results WHERE seq IN (SELECT seq FROM results ORDER BY seq LIMIT ?)", (count,)
        )
        self.depth -= count
        self.dropped += count
        self._set_meta("dropped", self.dropped)
        # Sequence numbers must stay unique even if every stored row is dropped.
        self._set_meta("last_seq", self.last_seq)

    def read_after(self, seq: int, limit: int) -> list[ProbeResult]:
        rows = self._db.execute(
            "SELECT data FROM results WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
        ).fetchall()
        return [ProbeResult.FromString(row[0]) for row in rows]

    def ack(self, up_to_seq: int) -> None:
        if up_to_seq <= self.acked_seq:
            return
        with self._db:
            self._db.execute("BEGIN")
            cur = self._db.execute("DELETE FROM results WHERE seq <= ?", (up_to_seq,))
            self.depth -= cur.rowcount
            self.acked_seq = up_to_seq
            # The collector may know a higher seq than this spool (its files were lost): new
            # results must continue above it or they would be taken for replays.
            self.last_seq = max(self.last_seq, up_to_seq)
            self._set_meta("acked_seq", up_to_seq)
            self._set_meta("last_seq", self.last_seq)

    def close(self) -> None:
        self._db.close()
