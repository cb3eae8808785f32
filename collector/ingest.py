"""Batch results from every agent stream into large ClickHouse inserts; acknowledge after commit.

Exactly-once under replay rests on two facts: an agent sends its results in increasing `seq`
order over one stream at a time, and this ingestor commits each agent's results in that order.
So the highest committed seq per agent (its high-water mark, read back from the store when an
agent first connects) tells which replayed results to drop. Every insert also carries an
`insert_deduplication_token`, so a retried insert that ClickHouse did accept is not stored twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from collector.errors import StoreError
from collector.store import Store
from collector.store.rows import RESULT_COLUMNS, result_row
from probenet.v1.probe_pb2 import ProbeResult

log = logging.getLogger(__name__)

AGENT_COLUMNS = (
    "agent_id", "region", "version", "capabilities", "last_seen", "spool_depth", "dropped_results", "last_seq",
)
AGENT_FLUSH_S = 5.0
MAX_RETRY_S = 10.0


@dataclass
class _Chunk:
    rows: list[list[Any]] = field(default_factory=list)
    last_seq: dict[str, int] = field(default_factory=dict)

    def token(self) -> str:
        spans = sorted(self.last_seq.items())
        return hashlib.sha256(repr((spans, len(self.rows))).encode()).hexdigest()


@dataclass
class AgentStatus:
    agent_id: str
    region: str
    version: str = ""
    capabilities: tuple[str, ...] = ()
    spool_depth: int = 0
    dropped_results: int = 0
    last_seen: datetime = field(default_factory=lambda: datetime.now(UTC))


class Ingestor:
    def __init__(
        self, store: Store, batch_rows: int = 10_000, flush_interval: float = 1.0, max_pending_rows: int = 200_000
    ) -> None:
        self._store = store
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.max_pending_rows = max_pending_rows
        self._pending: deque[tuple[str, int, list[list[Any]]]] = deque()
        self.pending_rows = 0
        self._inflight: _Chunk | None = None
        self.committed: dict[str, int] = {}
        self._submitted: dict[str, int] = {}
        self._agents: dict[str, AgentStatus] = {}
        self._agents_dirty = False
        self._committed_changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self.store_ok = True
        self.rows_committed = 0
        self.duplicates_dropped = 0
        self.inserts = 0

    @property
    def overloaded(self) -> bool:
        return self.pending_rows >= self.max_pending_rows

    async def open_agent(self, agent_id: str) -> int:
        """Return the agent's committed high-water mark, loading it from the store once."""
        if agent_id not in self.committed:
            _, rows = await self._store.run(
                self._store.query,
                "SELECT max(seq) FROM probe_results WHERE agent_id = {a:String}",
                {"a": agent_id},
            )
            hwm = int(rows[0][0] or 0) if rows else 0
            self.committed.setdefault(agent_id, hwm)
            self._submitted.setdefault(agent_id, hwm)
        return self.committed[agent_id]

    def submit(self, agent_id: str, results: list[ProbeResult]) -> int:
        """Queue results (already validated, identity stamped) for insert; return how many were new."""
        floor = self._submitted.get(agent_id, 0)
        fresh = [r for r in results if r.seq > floor]
        self.duplicates_dropped += len(results) - len(fresh)
        if not fresh:
            return 0
        now = datetime.now(UTC)
        rows = [result_row(r, now) for r in fresh]
        self._submitted[agent_id] = fresh[-1].seq
        self._pending.append((agent_id, fresh[-1].seq, rows))
        self.pending_rows += len(rows)
        if self.pending_rows >= self.batch_rows:
            self._wake.set()
        return len(fresh)

    def note_agent(self, status: AgentStatus) -> None:
        self._agents[status.agent_id] = status
        self._agents_dirty = True

    async def wait_committed(self, agent_id: str, above: int, timeout: float) -> int:
        """Wait until the agent's committed mark exceeds `above` (or timeout); return the mark."""
        async with self._committed_changed:
            try:
                await asyncio.wait_for(
                    self._committed_changed.wait_for(lambda: self.committed.get(agent_id, 0) > above), timeout
                )
            except TimeoutError:
                pass
        return self.committed.get(agent_id, 0)

    async def drain(self, timeout: float) -> bool:
        """Ask the insert loop to commit everything now; True if it did within `timeout`."""
        deadline = time.monotonic() + timeout
        while self._pending or self._inflight is not None:
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            await asyncio.sleep(0.02)
        return True

    def _take_chunk(self) -> _Chunk:
        chunk = _Chunk()
        while self._pending and len(chunk.rows) < self.batch_rows:
            agent_id, last_seq, rows = self._pending.popleft()
            chunk.rows.extend(rows)
            chunk.last_seq[agent_id] = last_seq
        return chunk

    async def run(self) -> None:
        """Insert loop: every flush_interval, or as soon as a full batch is waiting."""
        last_agent_flush = 0.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush_once()
            if self._agents_dirty and time.monotonic() - last_agent_flush > AGENT_FLUSH_S:
                last_agent_flush = time.monotonic()
                await self._flush_agents()

    async def flush_once(self) -> None:
        """Commit what is pending, retrying the same chunk with backoff until the store takes it."""
        delay = 0.2
        while self._inflight is not None or self._pending:
            if self._inflight is None:
                self._inflight = self._take_chunk()
            chunk = self._inflight
            try:
                await self._store.run(
                    self._store.insert, "probe_results", chunk.rows, RESULT_COLUMNS,
                    {"insert_deduplication_token": chunk.token()},
                )
            except StoreError as exc:
                if self.store_ok:
                    log.error("store unavailable, holding %d rows and acks: %s", self.pending_rows, exc)
                self.store_ok = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            self._inflight = None
            self.store_ok = True
            self.inserts += 1
            self.rows_committed += len(chunk.rows)
            self.pending_rows -= len(chunk.rows)
            async with self._committed_changed:
                for agent_id, seq in chunk.last_seq.items():
                    self.committed[agent_id] = max(self.committed.get(agent_id, 0), seq)
                self._committed_changed.notify_all()
            if self.pending_rows < self.batch_rows and not self._wake.is_set():
                return

    async def _flush_agents(self) -> None:
        self._agents_dirty = False
        rows = [
            [a.agent_id, a.region, a.version, list(a.capabilities), a.last_seen, a.spool_depth,
             a.dropped_results, self.committed.get(a.agent_id, 0)]
            for a in self._agents.values()
        ]
        try:
            await self._store.run(self._store.insert, "agents", rows, AGENT_COLUMNS)
        except StoreError as exc:
            self._agents_dirty = True
            log.warning("could not record agent status: %s", exc)
