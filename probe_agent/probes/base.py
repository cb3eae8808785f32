"""The probe boundary: a probe is an async function filling a ProbeResult in place.

`run_probe` enforces the deadline and turns every exception into result data, so a hostile
or broken target can never crash the scheduler. Probes report the phase they are in with
`set_phase`, so a deadline hit while connecting is `tcp_timeout`, while resolving
`dns_timeout`, and anywhere else `timeout`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from probe_agent.probes.context import ProbeContext
from probe_agent.probes.failures import TIMEOUT_BY_PHASE, ProbeFailure, classify
from probenet.v1.probe_pb2 import CheckSpec, FailureClass, Outcome, ProbeResult

# A probe fills `result` in place as it progresses; on a deadline the partial data survives.
ProbeFn = Callable[[CheckSpec, ProbeContext, ProbeResult], Awaitable[None]]

DEFAULT_TIMEOUT_S = 10.0
_phase: ContextVar[str] = ContextVar("probe_phase", default="")


def set_phase(phase: str) -> None:
    _phase.set(phase)


def current_phase() -> str:
    return _phase.get()


def timeout_s(spec: CheckSpec) -> float:
    return spec.timeout.ToMilliseconds() / 1000.0 or DEFAULT_TIMEOUT_S


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
    limit = timeout_s(spec)
    token = _phase.set("")
    try:
        async with asyncio.timeout(limit):
            await probe(spec, ctx, result)
        if result.outcome == Outcome.OUTCOME_UNSPECIFIED:
            result.outcome = Outcome.OUTCOME_SUCCESS
    except ProbeFailure as exc:
        fail(result, exc.failure_class, exc.message, exc.host)
    except TimeoutError:
        if result.outcome == Outcome.OUTCOME_UNSPECIFIED:
            phase = _phase.get()
            where = f" during {phase}" if phase else ""
            fail(
                result,
                TIMEOUT_BY_PHASE.get(phase, FailureClass.TIMEOUT),
                f"deadline of {limit:g}s exceeded{where}",
            )
    except Exception as exc:  # the boundary: every error becomes data
        failure_class, message = classify(exc, _phase.get())
        fail(result, failure_class, message)
    finally:
        _phase.reset(token)
    result.timings.total_ms = (time.perf_counter() - start) * 1000.0
    return result
