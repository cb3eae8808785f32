"""Batch results from every agent stream into large ClickHouse inserts; acknowledge after commit.

Exactly-once under replay rests on two facts: an agent sends its results in increasing `seq`
order over one stream at a time, and this ingestor commits each agent's results in that order.
So the highest committed seq per agent (its high-water mark, read back from the store when an
agent first connects) tells which replayed results to drop. An agent is an `Identity`, the pair
(region, agent id): two regions may both have an `it-1`, and one can never settle the other's
results. Every insert also carries an `insert_deduplication_token`, so a retried insert that
ClickHouse did accept is not stored twice.

Memory is bounded by `max_pending_rows` and by `max_pending_bytes` (the results' encoded size):
past either the server stops reading agent streams until commits make room.

Nothing the ingest task awaits is shared with the streams: a commit wakes each agent's ack
writer through that agent's own `asyncio.Event`, never through a lock. (It used to be one
`asyncio.Condition`; on Python 3.11 `asyncio.wait_for` runs the wait in a task of its own, and a
stream closing while its ack wait timed out could leave the condition's lock held by nobody:
every commit, so every agent's acks, stopped for good.) `stalled` tells when pending rows stop
moving anyway, for `/readyz`. Turning results into rows is the costly part of ingest, so for the embedded
store the collector only frames each result's wire bytes and chDB decodes the fields itself
(rows.frame_rows); a server store gets an Arrow table. Either way it runs on a worker thread,
never on the event loop, and the next chunk is prepared while the current one is inserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from collector.errors import StoreError
from collector.ingest.validate import MAX_SEQ
from collector.store import Store
from collector.store.rows import RESULT_COLUMNS, frame_rows, result_row
from probenet.v1.probe_pb2 import ProbeResult

log = logging.getLogger(__name__)

AGENT_COLUMNS = (
    "agent_id",
    "region",
    "version",
    "capabilities",
    "last_seen",
    "spool_depth",
    "dropped_results",
    "last_seq",
)
AGENT_FLUSH_S = 5.0
MAX_RETRY_S = 10.0
# Pending rows that have not moved for this long mean ingest is stuck (or the store hangs):
# three times the longest retry backoff, far above any insert this collector makes.
STALL_AFTER_S = 30.0

# An insert starts at batch_rows (or every flush_interval) but takes whatever is pending up to
# this: each insert writes a part per partition with a fixed cost, so under a backlog bigger
# inserts are what keeps up (chDB: ~240k rows/s at 10,000 rows, ~360k at 25,000+).
MAX_INSERT_ROWS = 50_000


class Identity(NamedTuple):
    """Who sent a result: the key of every per-agent fact (marks, agents table, rate limits, API).

    A plain (region, agent_id) tuple, so layers above ingest key by it without importing it."""

    region: str
    agent_id: str


@dataclass
class _Pending:
    who: Identity
    last_seq: int  # settles everything of this agent up to here, refused results included
    results: list[ProbeResult]
    received_ms: int
    nbytes: int


@dataclass
class _Chunk:
    parts: list[_Pending] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    table: Any = None

    @property
    def last_seq(self) -> dict[Identity, int]:
        return {p.who: p.last_seq for p in self.parts}

    def token(self) -> str:
        spans = [(w.region, w.agent_id, seq) for w, seq in sorted(self.last_seq.items())]
        return hashlib.sha256(repr((spans, self.rows)).encode()).hexdigest()


def _framed(chunk: _Chunk) -> bytes:
    return frame_rows([(p.results, p.received_ms) for p in chunk.parts])


def _rows(chunk: _Chunk) -> list[list[Any]]:
    return [
        result_row(r, datetime.fromtimestamp(p.received_ms / 1000, UTC))
        for p in chunk.parts
        for r in p.results
    ]


@dataclass
class AgentStatus:
    who: Identity
    version: str = ""
    capabilities: tuple[str, ...] = ()
    spool_depth: int = 0
    dropped_results: int = 0
    last_seen: datetime = field(default_factory=lambda: datetime.now(UTC))


class Ingestor:
    def __init__(
        self,
        store: Store,
        batch_rows: int = 10_000,
        flush_interval: float = 1.0,
        max_pending_rows: int = 200_000,
        max_pending_bytes: int = 256 << 20,
    ) -> None:
        self._store = store
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.max_pending_rows = max_pending_rows
        self.max_pending_bytes = max_pending_bytes
        self._pending: deque[_Pending] = deque()
        self.pending_rows = 0
        self.pending_bytes = 0
        self._inflight: _Chunk | None = None
        self.committed: dict[Identity, int] = {}
        self._submitted: dict[Identity, int] = {}
        self._agents: dict[Identity, AgentStatus] = {}
        self._agents_dirty = False
        self._commit_events: dict[Identity, asyncio.Event] = {}
        self.stall_after_s = STALL_AFTER_S
        self._moved_at = time.monotonic()  # last commit, or when pending work last appeared
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._convert_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-convert")
        self.schema_ready = False
        self.store_ok = True
        self.rows_committed = 0
        self.duplicates_dropped = 0
        self.inserts = 0
        # Called with (rows, seconds) after every committed insert: how metrics see batches.
        self.on_insert: Callable[[int, float], None] | None = None

    @property
    def overloaded(self) -> bool:
        return self.pending_rows >= self.max_pending_rows or self.pending_bytes >= self.max_pending_bytes

    def stalled(self, now: float | None = None) -> float:
        """Seconds pending work has not moved, once that is over `stall_after_s`; else 0."""
        if not self._pending and self._inflight is None:
            return 0.0
        idle = (time.monotonic() if now is None else now) - self._moved_at
        return idle if idle > self.stall_after_s else 0.0

    async def prepare(self) -> bool:
        """Apply migrations once; False (store marked down, retried by `run`) if the store is unreachable."""
        try:
            await self._store.run(self._store.migrate)
        except StoreError as exc:
            log.error("store unavailable at start, will retry: %s", exc)
            self.store_ok = False
            return False
        self.schema_ready = True
        self.store_ok = True
        return True

    async def open_agent(self, who: Identity) -> int:
        """Return the agent's committed high-water mark, loading it from the store once.

        Raises StoreError while the store cannot tell (the agent must wait: acking blind
        could skip results)."""
        if who not in self.committed:
            if not self.schema_ready:
                raise StoreError("schema not ready")
            # Rows above MAX_SEQ can only come from before seq was validated: never a mark.
            _, rows = await self._store.run(
                self._store.query,
                "SELECT max(seq) FROM probe_results "
                "WHERE region = {r:String} AND agent_id = {a:String} AND seq <= {m:UInt64}",
                {"r": who.region, "a": who.agent_id, "m": MAX_SEQ},
            )
            hwm = int(rows[0][0] or 0) if rows else 0
            self.committed.setdefault(who, hwm)
            self._submitted.setdefault(who, hwm)
        return self.committed[who]

    def submitted_mark(self, who: Identity) -> int:
        """Highest seq of this agent already queued or committed: anything at or below is a replay."""
        return self._submitted.get(who, 0)

    def submit(
        self,
        who: Identity,
        results: list[ProbeResult],
        last_seq: int | None = None,
        nbytes: int | None = None,
    ) -> int:
        """Queue results (validated, identity stamped, increasing seq) for insert; return how many were new.

        `last_seq` (default: the last result's) may be higher than any result given, when the
        validator refused the batch's tail: acknowledging past them keeps them from coming back.
        `nbytes` is the results' encoded size when the caller already knows it. Acks never
        go above MAX_SEQ, whatever is asked.
        """
        floor = self._submitted.get(who, 0)
        fresh = [r for r in results if r.seq > floor]
        self.duplicates_dropped += len(results) - len(fresh)
        mark = min(MAX_SEQ, max([floor, last_seq or 0, *(r.seq for r in fresh[-1:])]))
        if mark <= floor:
            return 0
        if nbytes is None or len(fresh) != len(results):
            nbytes = sum(r.ByteSize() for r in fresh)
        if not self._pending and self._inflight is None:
            self._moved_at = time.monotonic()
        self._submitted[who] = mark
        self._pending.append(_Pending(who, mark, fresh, int(time.time() * 1000), nbytes))
        self.pending_rows += len(fresh)
        self.pending_bytes += nbytes
        if self.pending_rows >= self.batch_rows:
            self._wake.set()
        if self.overloaded:
            self._room.clear()
        return len(fresh)

    def note_agent(self, status: AgentStatus) -> None:
        self._agents[status.who] = status
        self._agents_dirty = True

    async def wait_committed(self, who: Identity, above: int, timeout: float) -> int:
        """Wait until the agent's committed mark exceeds `above` (or timeout); return the mark."""
        if self.committed.get(who, 0) <= above:
            event = self._commit_events.setdefault(who, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
        return self.committed.get(who, 0)

    def forget_waiters(self, who: Identity) -> None:
        """The agent's stream ended: drop its wake-up event (a new stream makes a new one)."""
        self._commit_events.pop(who, None)

    async def wait_for_room(self, timeout: float) -> None:
        if self.overloaded:
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._room.wait()

    async def drain(self, timeout: float) -> bool:
        """Ask the insert loop to commit everything now; True if it did within `timeout`."""
        deadline = time.monotonic() + timeout
        while self._pending or self._inflight is not None:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.02)
        return True

    def _take_chunk(self) -> _Chunk | None:
        if not self._pending:
            return None
        chunk = _Chunk()
        while (
            self._pending
            and chunk.rows < max(self.batch_rows, MAX_INSERT_ROWS)
            and chunk.nbytes < self.max_pending_bytes // 4
        ):
            part = self._pending.popleft()
            chunk.parts.append(part)
            chunk.rows += len(part.results)
            chunk.nbytes += part.nbytes
        return chunk

    async def run(self) -> None:
        """Insert loop: every flush_interval, or as soon as a full batch is waiting."""
        last_agent_flush = 0.0
        delay = 0.5
        while not self.schema_ready:
            if await self.prepare():
                log.info("store reachable again; schema ready")
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_S)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush_once()
            except Exception:
                # A bug must not silently end ingest: acks would stop for every agent forever.
                log.exception("ingest flush failed; retrying the same chunk")
                await asyncio.sleep(MAX_RETRY_S)
            if self._agents_dirty and time.monotonic() - last_agent_flush > AGENT_FLUSH_S:
                last_agent_flush = time.monotonic()
                await self._flush_agents()

    async def _converted(self, chunk: _Chunk) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._convert_pool, _framed if self._store.embedded else _rows, chunk
        )

    async def flush_once(self) -> None:
        """Commit what is pending, retrying the same chunk with backoff until the store takes it."""
        delay = 0.2
        if self._inflight is None:
            self._inflight = self._take_chunk()
        upcoming: asyncio.Future[Any] | None = None
        following: _Chunk | None = None
        while self._inflight is not None:
            chunk = self._inflight
            if chunk.table is None and chunk.rows:
                chunk.table = await self._converted(chunk)
            if (
                upcoming is None
                and len(self._pending)
                and (self.pending_rows - chunk.rows >= self.batch_rows or self._wake.is_set())
            ):
                following = self._take_chunk()
                if following is not None:
                    upcoming = asyncio.ensure_future(self._convert_next(following))
            try:
                if chunk.rows:
                    started = time.perf_counter()
                    await self._insert(chunk)
                    if self.on_insert is not None:
                        self.on_insert(chunk.rows, time.perf_counter() - started)
            except StoreError as exc:
                if self.store_ok:
                    log.error("store unavailable, holding %d rows and acks: %s", self.pending_rows, exc)
                self.store_ok = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            except BaseException:
                # The chunk taken ahead must go back in order, or a later commit would
                # acknowledge past results that were never stored.
                if following is not None and upcoming is not None:
                    upcoming.cancel()
                    self._pending.extendleft(reversed(following.parts))
                raise
            await self._committed(chunk)
            self._inflight = await upcoming if upcoming is not None else None
            upcoming = following = None
            if self._inflight is None and (self.pending_rows >= self.batch_rows or self._wake.is_set()):
                self._wake.clear()
                self._inflight = self._take_chunk()

    async def _insert(self, chunk: _Chunk) -> None:
        settings = {"insert_deduplication_token": chunk.token()}
        if not self._store.embedded:
            await self._store.run(self._store.insert, "probe_results", chunk.table, RESULT_COLUMNS, settings)
            return
        try:
            await self._store.run(self._store.insert_results_protobuf, chunk.table, settings)
        except StoreError as exc:
            # In-process, a failure is about the data, not the network: the row path checks
            # every value in Python, so one odd result cannot block every agent's acks.
            log.warning("protobuf insert failed, retrying the chunk row by row: %s", exc)
            rows = await asyncio.get_running_loop().run_in_executor(self._convert_pool, _rows, chunk)
            await self._store.run(self._store.insert, "probe_results", rows, RESULT_COLUMNS, settings)

    async def _convert_next(self, chunk: _Chunk) -> _Chunk:
        if chunk.rows:
            chunk.table = await self._converted(chunk)
        return chunk

    async def _committed(self, chunk: _Chunk) -> None:
        if not self.store_ok:
            log.info("store accepts inserts again")
        self.store_ok = True
        if chunk.rows:
            self.inserts += 1
        self.rows_committed += chunk.rows
        self.pending_rows -= chunk.rows
        self.pending_bytes -= chunk.nbytes
        self._moved_at = time.monotonic()
        if not self.overloaded:
            self._room.set()
        for who, seq in chunk.last_seq.items():
            self.committed[who] = max(self.committed.get(who, 0), seq)
            event = self._commit_events.pop(who, None)
            if event is not None:
                event.set()

    async def _flush_agents(self) -> None:
        self._agents_dirty = False
        rows = [
            [
                a.who.agent_id,
                a.who.region,
                a.version,
                list(a.capabilities),
                a.last_seen,
                a.spool_depth,
                a.dropped_results,
                self.committed.get(a.who, 0),
            ]
            for a in self._agents.values()
        ]
        try:
            await self._store.run(self._store.insert, "agents", rows, AGENT_COLUMNS)
        except StoreError as exc:
            self._agents_dirty = True
            log.warning("could not record agent status: %s", exc)

    def close(self) -> None:
        self._convert_pool.shutdown(wait=False, cancel_futures=True)
