"""Run every check every `interval`, with jitter, a hard deadline and bounded concurrency."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from probe_agent.probes import PROBE_TYPES
from probe_agent.probes.base import run_probe
from probe_agent.probes.context import ProbeContext
from probe_agent.ratelog import RateLimitedLog
from probenet.v1.probe_pb2 import CheckSpec, ProbeResult

log = logging.getLogger(__name__)

# Spread of each run around its slot, as a share of the interval: keeps many agents from
# hitting a target in lockstep without drifting the schedule.
JITTER_SHARE = 0.1


class Scheduler:
    def __init__(
        self,
        ctx: ProbeContext,
        sink: Callable[[ProbeResult], None],
        max_concurrency: int = 256,
        rng: random.Random | None = None,
        phase: float | None = None,
    ) -> None:
        self._ctx = ctx
        self._phase = phase
        self._sink = sink
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tasks: dict[str, tuple[bytes, asyncio.Task[None]]] = {}
        self._rng = rng or random.Random()
        self.runs = 0
        self.skipped = 0
        self.sink_errors = 0
        self._say = RateLimitedLog(log)

    @property
    def check_ids(self) -> list[str]:
        return sorted(self._tasks)

    def set_checks(self, checks: list[CheckSpec] | tuple[CheckSpec, ...]) -> None:
        """Replace the running set: unchanged checks keep their rhythm, changed ones restart."""
        wanted = {c.id: c for c in checks if c.probe in PROBE_TYPES}
        for check_id, (fingerprint, task) in list(self._tasks.items()):
            spec = wanted.get(check_id)
            if spec is None or spec.SerializeToString(deterministic=True) != fingerprint:
                task.cancel()
                del self._tasks[check_id]
        order = sorted(wanted)
        for check_id, spec in wanted.items():
            if check_id not in self._tasks:
                # With a fixed phase the agent's checks still take turns over the interval (so one
                # agent never fires them all at once); each check keeps the agent's phase offset.
                share = order.index(check_id) / len(order)
                task = asyncio.create_task(self._loop(spec, share), name=f"check:{check_id}")
                self._tasks[check_id] = (spec.SerializeToString(deterministic=True), task)

    async def stop(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _deliver(self, spec: CheckSpec, result: ProbeResult) -> None:
        """Hand the result on; whatever goes wrong there, the check keeps its schedule."""
        try:
            self._sink(result)
        except Exception:
            self.sink_errors += 1
            if self._say.log(logging.ERROR, "sink", "check %s: its result could not be stored", spec.id):
                log.exception("the error was")

    async def _loop(self, spec: CheckSpec, share: float = 0.0) -> None:
        interval = max(spec.interval.ToMilliseconds() / 1000.0, 0.05)
        probe = PROBE_TYPES[spec.probe]
        next_slot = self._first_slot(interval, share)
        while True:
            jitter = (
                0.0 if self._phase is not None else self._rng.uniform(-JITTER_SHARE, JITTER_SHARE) * interval
            )
            await asyncio.sleep(max(0.0, next_slot + jitter - time.monotonic()))
            async with self._slots:
                result = await run_probe(probe, spec, self._ctx)
            self.runs += 1
            self._deliver(spec, result)
            next_slot += interval
            now = time.monotonic()
            if now > next_slot + interval:  # (skipping whole intervals keeps a fixed phase)
                missed = int((now - next_slot) // interval)
                self.skipped += missed
                next_slot += missed * interval
                log.warning("check %s is %d runs behind; skipping them", spec.id, missed)

    def _first_slot(self, interval: float, share: float = 0.0) -> float:
        """The first run's monotonic time: at (phase + share) of the wall clock's interval
        multiples (share: the check's turn among the agent's checks), or a random point within
        the first interval."""
        if self._phase is None:
            return time.monotonic() + self._rng.uniform(0, interval)
        wall = time.time()
        slot = (wall // interval) * interval + ((self._phase + share) % 1.0) * interval
        if slot < wall:
            slot += interval
        return time.monotonic() + (slot - wall)
