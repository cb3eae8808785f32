"""Verdicts: from probe results to verdicts and outage events (DESIGN section 4), live.

The engine (engine, model, events, replay) is pure code: no clock, no I/O; time is always an
argument (epoch seconds, float), and so is the previous evaluation (the vantage memory behind the
onset and recovery holds). The live side: `Evaluator` (evaluator.py) reads the window from the
store each tick, decides with the engine and stores the event versions; `evaluate_forever` runs it;
`Notifier` (notify.py) delivers each stored version to each notification sink (sinks/) once.

    from collector.verdicts import Engine, EventTracker, Result

    engine = Engine(checks)                       # CheckSpec messages (or CheckOptions)
    tracker = EventTracker(engine.options)        # add open_events=... to resume after a restart
    previous = None
    evaluation = engine.evaluate(now, results, previous)  # Results in (now - window, now] count
    previous = evaluation                         # the next evaluation continues from this one
    for event in tracker.update(evaluation):      # the event versions this evaluation made
        print(event.to_dict())

    replay(checks, results)                       # ticks derived from the results: what `classify` does

`Evaluation`: `verdicts` {check_id: Verdict(status ok|partial|outage|unknown, scope
global|regional|undetermined ("" when ok), regions (affected, sorted), cause, region_states)},
`vantage` (impaired agents and regions, left out of the verdicts), `certs` (TLS checks under
their expiry threshold), `impaired_agents`, `impaired_regions`, `held_agents`, `held_regions`
(suspects at an incident's onset and impairments recovering: left out of the verdicts, no event;
see engine.py) and `memory` (what the next evaluation's `previous` carries).

Inputs at three levels, the same decisions: `Engine.evaluate(now, results, previous)` (raw results),
`evaluate_views(now, views, previous)` (one AgentView per check and agent), `evaluate_samples(now,
samples, quiet, previous)` (one RegionSample per check and region, plus the quiet regions as shared UP
states: what the live evaluator computes in SQL).

An event's JSON form (`Event.to_dict()`) is a stable contract:

    {"id", "version", "kind": "check"|"vantage"|"cert_expiring", "check", "agent",
     "status": ok-less status | "impaired" (vantage) | "warning" (cert_expiring),
     "scope": "global"|"regional"|"undetermined" | "agent"|"region" (vantage),
     "regions": [sorted], "cause": {"class", "host", "error"} | null,
     "opened_at", "updated_at", "closed_at" (ISO 8601 UTC or null),
     "peak_status", "peak_scope", "peak_regions" (the worst it ever was, every region it affected),
     "recovering_regions" (regions of this version recovering, not yet settled)}

Versions are made only for settled changes (see events.py): a check's event waits for its
pending regions (`Verdict.pending`) within the latency budget, and a recovery in progress
updates `recovering_regions` of the current version instead of making one.
"""

from collector.verdicts.engine import Engine, agent_state, dominant_cause
from collector.verdicts.evaluator import Evaluator, evaluate_forever
from collector.verdicts.events import (
    KIND_CERT,
    KIND_CHECK,
    KIND_VANTAGE,
    Event,
    EventTracker,
    Signal,
    event_from_row,
)
from collector.verdicts.model import (
    AgentView,
    Cause,
    CertWarning,
    CheckOptions,
    Evaluation,
    Failure,
    Hold,
    RegionVerdict,
    Result,
    VantageVerdict,
    Verdict,
)
from collector.verdicts.notify import Notifier
from collector.verdicts.replay import Replay, replay

__all__ = [
    "KIND_CERT",
    "KIND_CHECK",
    "KIND_VANTAGE",
    "AgentView",
    "Cause",
    "CertWarning",
    "CheckOptions",
    "Engine",
    "Evaluation",
    "Evaluator",
    "Event",
    "EventTracker",
    "Failure",
    "Hold",
    "Notifier",
    "RegionVerdict",
    "Replay",
    "Result",
    "Signal",
    "VantageVerdict",
    "Verdict",
    "agent_state",
    "dominant_cause",
    "evaluate_forever",
    "event_from_row",
    "replay",
]
