"""On-disk spool: every result is written here before it is sent, and deleted once acknowledged.

SQLite in WAL mode: one file, atomic appends, survives kill -9. The spool assigns each result
its per-agent sequence number, which therefore survives restarts.

Whatever the disk does, appending never raises, so probing goes on:

- The spool is bounded in results (`max_results`) and in bytes (`max_bytes`, the WAL and a
  small reserve file included; see spool_space). Past either bound, or when the filesystem's
  free space runs short, the oldest results are dropped and counted in `dropped`.
- When SQLite still reports the disk full, the reserve file is released so the delete and
  the checkpoint that free space can be written, the oldest results are shed and the write
  is retried once; a result that still cannot be stored is counted as dropped.
- An acknowledgement frees space the same way, without shedding anything.
- On a disk without a free block the spool still opens: without the reserve, or else with
  exclusive locking (the WAL index in memory instead of a -shm file).
- A spool file that is not a database (corrupt, or empty) is moved aside as
  `spool.db.corrupt-<UTC time>`, named in the log with the results it held when that can
  be told, and a fresh spool continues the numbering.

A result dropped after it was sent, before its ack, may still have reached the collector: it
is kept as a tombstone (its seq with no data) until an ack says it was stored (not a loss) or
a new stream's first ack says it was not (a loss, counted then).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from google.protobuf.message import DecodeError

from probe_agent.errors import AgentError
from probe_agent.ratelog import RateLimitedLog
from probe_agent.spool_space import SpoolBudget, SpoolUsage, rows_to_drop
from probenet.v1.probe_pb2 import ProbeResult

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 512 << 20
FILE_NAME = "spool.db"
RESERVE_NAME = "spool.reserve"
# SQLite's INTEGER is signed 64-bit; the wire's seq is uint64.
# What a stored result may grow by in a ResultBatch: its tag and length (6 bytes) and a seq
# field set after reading (11 bytes).
RESULT_FRAMING = 17
MAX_SEQ = (1 << 63) - 1
# How far a collector's "stored up to" may move this agent's numbering (after its spool was
# lost). No real agent gets near; a larger value is a broken or hostile collector.
MAX_ADOPTED_SEQ = 1 << 62
# How long the spool counts as full after it last had to shed for room.
FULL_HOLD_S = 60.0
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_META_KEYS = ("acked_seq", "sent_seq", "last_seq", "dropped", "resets")


# A write: its statements, then (optionally) what to apply in memory once it committed.
OnCommit = Callable[[], None] | None
Action = Callable[[], OnCommit]


class SpoolError(AgentError):
    """The spool directory or file cannot be used at all (not a full disk, not corruption)."""


class Spool:
    def __init__(
        self, directory: str | Path, max_results: int = 1_000_000, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.dir = Path(directory)
        self.path = self.dir / FILE_NAME
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"spool.dir: cannot create {self.dir}: {exc.strerror}") from exc
        self.max_results = max_results
        self.max_bytes = max_bytes
        self.acked_seq = self.sent_seq = self.last_seq = 0
        self.dropped = self.resets = self.write_errors = 0
        self.depth = 0
        self._doubtful = 0
        self._saved_dropped = 0
        # Bytes appended since the last look at the disk: looking costs more than appending.
        self._unmeasured = 0
        self._full_until = 0.0
        self._say = RateLimitedLog(log)
        self._open()

    # -- opening, and starting over when the file is not a database -------------------------

    def _open(self) -> None:
        wal = _sibling(self.path, "-wal")
        if _size(self.path) == 0 and _size(wal) <= 0:
            self._start_over("is empty (0 bytes)", None)
            return
        try:
            self._connect_on_any_disk()
        except sqlite3.DatabaseError as exc:
            if _errorname(exc) not in _CORRUPT:
                raise SpoolError(f"{self.path}: cannot open the spool: {exc}") from exc
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._start_over(f"is not a usable database ({exc})", _salvage(self.path))

    def _connect_on_any_disk(self) -> None:
        """Open even on a full disk: first without the reserve, then without a -shm file."""
        for attempt in ("as usual", "without the reserve", "exclusive"):
            if attempt == "without the reserve":
                (self.dir / RESERVE_NAME).unlink(missing_ok=True)
            try:
                self._connect(exclusive=attempt == "exclusive")
                return
            except sqlite3.OperationalError as exc:
                if attempt == "exclusive":
                    raise
                log.warning("spool %s: cannot open it %s (%s); trying again", self.path, attempt, exc)
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()

    def _connect(self, exclusive: bool = False) -> None:
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if exclusive:
            # First, before anything reads the file: the WAL index then lives in memory, not
            # in a -shm file, so the spool opens on a disk with no free block (other readers
            # of the file are locked out until the agent restarts).
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        if self._db.execute("PRAGMA page_count").fetchone()[0] == 0:
            # A new file: lets a spool that filled its disk give space back. (Setting it on an
            # existing file is a write, which a full disk refuses.)
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        disk = os.statvfs(self.dir)
        self.budget = SpoolBudget.plan(self.max_bytes, disk.f_blocks * disk.f_frsize, page_size)
        self._db.execute(f"PRAGMA wal_autocheckpoint={self.budget.wal_pages}")
        self._db.execute(f"PRAGMA journal_size_limit={self.budget.wal_bytes}")
        self._db.executescript(_SCHEMA)
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        count, doubtful, top = self._db.execute(
            "SELECT count(*), total(length(data) = 0), max(seq) FROM results"
        ).fetchone()
        self.acked_seq = max(self.acked_seq, int(meta.get("acked_seq", 0)))
        self.sent_seq = max(self.sent_seq, self.acked_seq, int(meta.get("sent_seq", 0)))
        self.last_seq = max(self.last_seq, top or 0, self.sent_seq, int(meta.get("last_seq", 0)))
        self.dropped = max(self.dropped, int(meta.get("dropped", 0)))
        self._saved_dropped = int(meta.get("dropped", 0))
        self.resets = max(self.resets, int(meta.get("resets", 0)))
        self._doubtful = int(doubtful)
        self.depth = int(count) - self._doubtful
        self._ensure_reserve()

    def _start_over(self, why: str, held: int | None) -> None:
        """Move the unusable file aside and continue on a fresh one, numbering where it left off."""
        self._move_aside(why, held)
        self.resets += 1
        self.dropped += held or 0
        self.depth = self._doubtful = 0
        self._connect()
        self._write("start over", self._save_meta)

    def _move_aside(self, why: str, held: int | None) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            for suffix in ("", "-wal"):
                source = _sibling(self.path, suffix)
                if source.exists():
                    source.rename(_sibling(aside, suffix))
            _sibling(self.path, "-shm").unlink(missing_ok=True)
        except OSError as exc:
            raise SpoolError(f"{self.path} {why} and cannot be moved aside: {exc.strerror}") from exc
        lost = (
            f"its {held} unacknowledged results are lost"
            if held is not None
            else ("an unknown number of unacknowledged results is lost")
        )
        log.error("spool %s %s: moved aside to %s; %s; starting a fresh spool", self.path, why, aside, lost)

    # -- writing: never raises; a full disk sheds the oldest, a corrupt file starts over ------

    def _transaction(self, action: Action) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            on_commit = action()
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise
        if on_commit is not None:
            on_commit()

    def _write(self, what: str, action: Action, shed: bool = True) -> bool:
        """Run `action` in a transaction; True when it committed."""
        try:
            self._transaction(action)
            return True
        except sqlite3.Error as exc:
            if not self._recover(what, exc, shed):
                return False
        try:
            self._transaction(action)
            return True
        except sqlite3.Error as exc:
            self._failed(what, exc)
            return False

    def _recover(self, what: str, exc: sqlite3.Error, shed: bool) -> bool:
        """Make a retry of the failed write possible; False when there is no point."""
        name = _errorname(exc)
        if name in _CORRUPT:
            held = self.depth
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._start_over(f"failed on {what} ({exc})", held)
            return True
        if name != "SQLITE_FULL":
            self._failed(what, exc)
            return False
        self._mark_full()
        self._say.log(logging.ERROR, "disk full", "spool %s: disk full on %s; freeing space", self.path, what)
        (self.dir / RESERVE_NAME).unlink(missing_ok=True)
        try:
            if shed and self.depth:
                count = rows_to_drop(self.budget.reserve_bytes, self.usage().data_bytes, self.depth)
                self._transaction(functools.partial(self._shed, min(count, self._chunk())))
            self._give_back()
        except sqlite3.Error as again:
            self._failed(what, again)
            return False
        return True

    def _failed(self, what: str, exc: sqlite3.Error) -> None:
        self.write_errors += 1
        self._say.log(logging.ERROR, f"failed {what}", "spool %s: %s failed: %s", self.path, what, exc)

    def _give_back(self) -> None:
        """Return free pages to the filesystem and shrink the WAL, then restore the reserve."""
        self._db.execute("PRAGMA incremental_vacuum").fetchall()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        self._ensure_reserve()

    def _ensure_reserve(self) -> None:
        reserve = self.dir / RESERVE_NAME
        size = self.budget.reserve_bytes
        if _size(reserve) == size or _disk_free(self.dir) < size + self.budget.disk_headroom:
            return
        try:
            with reserve.open("wb") as f:
                os.posix_fallocate(f.fileno(), 0, size)
        except OSError:
            reserve.unlink(missing_ok=True)

    def _mark_full(self) -> None:
        self._full_until = time.monotonic() + FULL_HOLD_S

    @property
    def full(self) -> bool:
        """True while the spool has recently had to drop results for room (bytes or disk)."""
        return time.monotonic() < self._full_until

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, min(value, MAX_SEQ)))

    def _save_meta(self) -> None:
        for key in _META_KEYS:
            self._set_meta(key, getattr(self, key))

    # -- appending and bounds ----------------------------------------------------------------

    def append(self, result: ProbeResult) -> int:
        """Assign the next sequence number to `result`, store it, and return the number.

        Never raises: a result that cannot be stored is counted as dropped."""
        self.last_seq += 1
        result.seq = self.last_seq
        data = result.SerializeToString()

        def insert() -> None:
            # last_seq needs no meta row here: max(seq) says it while the row exists.
            self._db.execute("INSERT INTO results (seq, data) VALUES (?, ?)", (result.seq, data))
            if self.dropped != self._saved_dropped:
                self._set_meta("dropped", self.dropped)

        if self._write("append", insert):
            self.depth += 1
            self._saved_dropped = self.dropped
            self._unmeasured += len(data)
            if self._unmeasured >= self._measure_every or self.depth > self.max_results:
                self._unmeasured = 0
                self._enforce_bounds()
        else:
            self.dropped += 1
        return result.seq

    @property
    def _measure_every(self) -> int:
        return self.budget.wal_bytes // 4

    def usage(self) -> SpoolUsage:
        pages, free_pages = self._db.execute(
            "SELECT * FROM pragma_page_count(), pragma_freelist_count()"
        ).fetchone()
        return SpoolUsage(
            page_size=self.budget.page_size,
            page_count=pages,
            freelist_count=free_pages,
            wal_bytes=max(0, _size(_sibling(self.path, "-wal"))),
            disk_free=_disk_free(self.dir),
        )

    def _enforce_bounds(self) -> None:
        try:
            usage = self.usage()
        except sqlite3.Error as exc:
            self._failed("measuring", exc)
            return
        excess = self.budget.excess(usage)
        count = max(self.depth - self.max_results, rows_to_drop(excess, usage.data_bytes, self.depth))
        if count <= 0:
            self._ensure_reserve()  # released on a full disk: back once there is room again
            return
        if excess > 0:
            self._mark_full()
            self._say.log(
                logging.WARNING,
                "over budget",
                "spool %s is full (%d bytes in use, %d bytes free on its disk, max_bytes %d): "
                "dropping the %d oldest results",
                self.path,
                usage.file_bytes,
                usage.disk_free,
                self.max_bytes,
                count,
            )
        else:
            self._say.log(
                logging.WARNING,
                "max results",
                "spool %s holds max_results (%d): dropping the %d oldest results",
                self.path,
                self.max_results,
                count,
            )
        if (
            self._shed_in_chunks(count)
            and usage.disk_free < self.budget.disk_headroom + self.budget.reserve_bytes
        ):
            with contextlib.suppress(sqlite3.Error):
                self._give_back()

    def _chunk(self) -> int:
        """Rows per write transaction: a quarter of the WAL's size at their average size. A
        transaction's pages all go to the WAL, so one big ack or shed would need as much disk
        again as the rows it deletes."""
        try:
            data = self.usage().data_bytes
        except sqlite3.Error:
            data = 0
        per_row = max(1.0, data / max(1, self.depth + self._doubtful))
        return max(8, int(self.budget.wal_bytes / 4 / per_row))

    def _next_top(
        self, where: str, params: tuple[int, ...], offset: int, descending: bool = False
    ) -> int | None:
        """The seq `offset` rows into those matching `where`, in seq order; None past the end."""
        order = "DESC" if descending else ""
        row = self._db.execute(
            f"SELECT seq FROM results WHERE {where} ORDER BY seq {order} LIMIT 1 OFFSET ?", (*params, offset)
        ).fetchone()
        return None if row is None else int(row[0])

    def _shed_in_chunks(self, count: int) -> bool:
        chunk = self._chunk()
        while count > 0:
            step = min(chunk, count)
            if not self._write("dropping the oldest", functools.partial(self._shed, step)):
                return False
            count -= step
        return True

    def _shed(self, count: int) -> OnCommit:
        """Drop the `count` oldest results; those already sent become tombstones (see the module)."""
        if count <= 0:
            return None
        top = self._next_top("length(data) > 0", (), count - 1)
        top = self.last_seq if top is None else top
        doubtful = self._db.execute(
            "UPDATE results SET data = x'' WHERE seq <= ? AND length(data) > 0", (min(top, self.sent_seq),)
        ).rowcount
        lost = self._db.execute(
            "DELETE FROM results WHERE seq > ? AND seq <= ?", (self.sent_seq, top)
        ).rowcount
        self._set_meta("dropped", self.dropped + lost)
        self._set_meta("last_seq", self.last_seq)

        def apply() -> None:
            self._doubtful += doubtful
            self.depth -= doubtful + lost
            self.dropped += lost

        return apply

    # -- reading and acknowledgements ---------------------------------------------------------

    def read_after(self, seq: int, limit: int, max_bytes: int | None = None) -> list[ProbeResult]:
        """Up to `limit` results after `seq`, stopping before `max_bytes` of them (one at least)."""
        try:
            rows = self._db.execute(
                "SELECT seq, data FROM results WHERE seq > ? AND length(data) > 0 ORDER BY seq LIMIT ?",
                (min(seq, MAX_SEQ), limit),
            ).fetchall()
        except sqlite3.Error as exc:
            self._recover("reading", exc, shed=False)
            return []
        if max_bytes is not None:
            rows = _within(rows, max_bytes)
        results = []
        for row_seq, data in rows:
            try:
                result = ProbeResult.FromString(data)
            except DecodeError:
                self._drop_unreadable(row_seq)
                continue
            result.seq = row_seq  # renumbering (see adopt) changes the row, not the stored bytes
            results.append(result)
        return results

    def _drop_unreadable(self, seq: int) -> None:
        def delete() -> None:
            self._db.execute("DELETE FROM results WHERE seq = ?", (seq,))
            self._set_meta("dropped", self.dropped + 1)

        if self._write("dropping an unreadable result", delete, shed=False):
            self.depth -= 1
            self.dropped += 1
            self._say.log(
                logging.ERROR, "unreadable", "spool %s: result %d cannot be decoded; dropped", self.path, seq
            )

    def mark_sent(self, seq: int) -> None:
        """Record, before results go out, the highest seq ever sent: acks are trusted up to it."""
        if seq <= self.sent_seq:
            return
        self.sent_seq = seq
        self._write("recording what was sent", lambda: self._set_meta("sent_seq", seq))

    def ack(self, up_to_seq: int) -> int:
        """Forget the results up to `up_to_seq`, never past what was sent; return the mark applied."""
        if up_to_seq > self.sent_seq:
            self._say.log(
                logging.WARNING,
                "ack beyond sent",
                "collector acknowledged seq %d but this agent sent only up to %d; unsent results are kept",
                up_to_seq,
                self.sent_seq,
            )
        mark = min(up_to_seq, self.sent_seq)
        if mark <= self.acked_seq:
            return self.acked_seq
        self._forget(mark)
        self.acked_seq = mark
        return mark

    def _forget(self, mark: int) -> None:
        chunk = self._chunk()
        while True:
            try:
                top = self._next_top("seq <= ?", (mark,), chunk - 1)
            except sqlite3.Error:
                top = None
            top = mark if top is None else top
            if not self._write("acknowledging", functools.partial(self._delete_up_to, top), shed=False):
                return
            if top >= mark:
                return

    def _delete_up_to(self, top: int) -> OnCommit:
        real, doubtful = self._db.execute(
            "SELECT total(length(data) > 0), total(length(data) = 0) FROM results WHERE seq <= ?", (top,)
        ).fetchone()
        self._db.execute("DELETE FROM results WHERE seq <= ?", (top,))
        self._set_meta("acked_seq", top)

        def apply() -> None:
            self.depth -= int(real)
            self._doubtful -= int(doubtful)

        return apply

    def adopt(self, stored_up_to: int) -> None:
        """Apply a stream's first ack: what the collector already stores for this agent.

        Above anything this agent sent means its spool was lost: the unsent results are
        renumbered past it, or the collector would take them for replays. Tombstones above
        it were never stored: they are counted as dropped now."""
        if stored_up_to < self.acked_seq:
            log.warning(
                "collector stores this agent's results only up to seq %d, below the %d it acknowledged "
                "before (did it lose data?); acknowledged results were deleted and are not resent",
                stored_up_to,
                self.acked_seq,
            )
        if stored_up_to > self.sent_seq:
            self._renumber_past(stored_up_to)
        self.ack(min(stored_up_to, self.sent_seq))
        if self._doubtful:
            self._count_lost_tombstones()

    def _renumber_past(self, stored_up_to: int) -> None:
        shift = stored_up_to - self.sent_seq
        if stored_up_to > MAX_ADOPTED_SEQ or self.last_seq + shift > MAX_ADOPTED_SEQ:
            self._say.log(
                logging.ERROR,
                "bad hwm",
                "collector says it stores this agent's results up to seq %d, beyond any seq this agent "
                "numbers; numbering is not moved (the collector may take new results for replays)",
                stored_up_to,
            )
            return

        def done() -> None:
            for key, value in (("sent_seq", stored_up_to), ("last_seq", self.last_seq + shift)):
                self._set_meta(key, value)

        if self._shift_unsent(shift) and self._write("renumbering", done):
            log.warning(
                "collector stores this agent's results up to seq %d, above the %d this spool sent "
                "(was the spool lost?): %d unsent results renumbered past it",
                stored_up_to,
                self.sent_seq,
                self.depth,
            )
            self.sent_seq = stored_up_to
            self.last_seq += shift

    def _shift_unsent(self, shift: int) -> bool:
        """Move every unsent result up by `shift`, highest first and a chunk per transaction, so
        a moved row never lands on one still to move."""
        chunk = self._chunk()
        upper = MAX_SEQ
        while True:
            low = self._next_top("seq > ? AND seq <= ?", (self.sent_seq, upper), chunk - 1, descending=True)
            low = self.sent_seq if low is None else low - 1
            if not self._write("renumbering", functools.partial(self._shift_range, low, upper, shift)):
                return False
            if low <= self.sent_seq:
                return True
            upper = low

    def _shift_range(self, low: int, upper: int, shift: int) -> OnCommit:
        # Through negatives: within the range, too, a row could land on one not yet moved.
        self._db.execute(
            "UPDATE results SET seq = -(seq + ?) WHERE seq > ? AND seq <= ?", (shift, low, upper)
        )
        self._db.execute("UPDATE results SET seq = -seq WHERE seq < 0")
        return None

    def _count_lost_tombstones(self) -> None:
        def delete() -> OnCommit:
            lost = self._db.execute("DELETE FROM results WHERE length(data) = 0").rowcount
            self._set_meta("dropped", self.dropped + lost)

            def apply() -> None:
                self.dropped += lost
                self._doubtful -= lost

            return apply

        self._write("counting lost results", delete, shed=False)

    @property
    def file_bytes(self) -> int:
        return sum(max(0, _size(_sibling(self.path, s))) for s in ("", "-wal")) + max(
            0, _size(self.dir / RESERVE_NAME)
        )

    def close(self) -> None:
        self._db.close()


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _size(path: Path) -> int:
    """The file's size, or -1 when it does not exist."""
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _disk_free(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def _errorname(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", ""))


def _salvage(path: Path) -> int | None:
    """How many unacknowledged results a broken spool file held, when it can still say."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT count(*) FROM results WHERE length(data) > 0").fetchone()[0])
    except sqlite3.Error:
        return None


def _within(rows: list[tuple[int, bytes]], max_bytes: int) -> list[tuple[int, bytes]]:
    """The leading rows whose data (plus a field header each) fits in max_bytes; one at least."""
    total = 0
    for i, (_, data) in enumerate(rows):
        total += len(data) + RESULT_FRAMING
        if total > max_bytes and i > 0:
            return rows[:i]
    return rows
