"""The probe boundary: a probe is an async function CheckSpec -> ProbeResult.

`run_probe` enforces the deadline and turns every exception into result data, so a hostile
or broken target can never crash the scheduler.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from probe_agent.probes.context import ProbeContext
from probe_agent.probes.failures import ProbeFailure, classify
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, Outcome, ProbeResult

# A probe fills `result` in place as it progresses; on a deadline the partial data survives.
ProbeFn = Callable[[CheckSpec, ProbeContext, ProbeResult], Awaitable[None]]


def fail(result: ProbeResult, failure_class: FailureClass.ValueType, message: str, host: str = "") -> None:
    result.outcome = Outcome.OUTCOME_FAILED
    result.failure_class = failure_class
    result.error = message[:1000]
    if host:
        result.failure_host = host


async def run_probe(probe: ProbeFn, spec: CheckSpec, ctx: ProbeContext) -> ProbeResult:
    result = ProbeResult(check_id=spec.id, probe=spec.probe, target=spec.target)
    result.started_at.GetCurrentTime()
    start = time.perf_counter()
    timeout_s = spec.timeout.ToMilliseconds() / 1000.0 or 10.0
    try:
        async with asyncio.timeout(timeout_s):
            await probe(spec, ctx, result)
        if result.outcome == Outcome.OUTCOME_UNSPECIFIED:
            result.outcome = Outcome.OUTCOME_SUCCESS
    except ProbeFailure as exc:
        fail(result, exc.failure_class, exc.message, exc.host)
    except TimeoutError:
        if result.outcome != Outcome.OUTCOME_FAILED:
            fail(result, FailureClass.TIMEOUT, f"deadline of {timeout_s:g}s exceeded")
    except Exception as exc:  # noqa: BLE001 - the boundary: every error becomes data
        failure_class, message = classify(exc)
        fail(result, failure_class, message)
    result.timings.total_ms = (time.perf_counter() - start) * 1000.0
    return result
