"""The latest verdict of every check as Prometheus series (on /metrics with the rest):

    probenet_check_status{check, status}        1 for the check's status, 0 for the others
    probenet_check_region_up{check, region}     1 UP, 0 DOWN or PARTIAL, NaN no data
    probenet_check_affected_regions{check}      regions DOWN or PARTIAL
    probenet_vantage_impaired{agent, region}    1 per impaired agent (agent, its region) or
                                                impaired region (agent "")
    probenet_checks                             checks in the latest evaluation
    probenet_check_series_limited               1 when, above metrics.max_check_series checks,
                                                only the non-ok checks are exported

Bounded so a large fleet cannot make a scrape unbounded: above the limit the ok checks (the
ones nobody alerts on) are left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

STATUSES = ("ok", "partial", "outage", "unknown")
_REGION_UP = {"UP": 1.0, "DOWN": 0.0, "PARTIAL": 0.0}


def verdict_families(evaluation: Any, max_checks: int) -> Iterator[Metric]:
    """Families for `evaluation` (collector.verdicts.Evaluation, or None before the first tick)."""
    verdicts = dict(evaluation.verdicts) if evaluation is not None else {}
    limited = len(verdicts) > max_checks
    shown = [v for _, v in sorted(verdicts.items()) if not limited or v.status != "ok"]
    status = GaugeMetricFamily(
        "probenet_check_status", "The check's latest verdict status (one-hot).", labels=["check", "status"]
    )
    region_up = GaugeMetricFamily(
        "probenet_check_region_up",
        "1 if the region is UP for the check, 0 if DOWN or PARTIAL, NaN with no data.",
        labels=["check", "region"],
    )
    affected = GaugeMetricFamily(
        "probenet_check_affected_regions", "Regions DOWN or PARTIAL for the check.", labels=["check"]
    )
    for verdict in shown:
        for name in STATUSES:
            status.add_metric([verdict.check_id, name], float(verdict.status == name))
        for region in verdict.region_states:
            region_up.add_metric([verdict.check_id, region.region], _REGION_UP.get(region.state, math.nan))
        affected.add_metric([verdict.check_id], len(verdict.regions))
    impaired = GaugeMetricFamily(
        "probenet_vantage_impaired",
        "1 per impaired agent (with its region) or impaired region (agent empty).",
        labels=["agent", "region"],
    )
    for vantage in evaluation.vantage if evaluation is not None else ():
        impaired.add_metric([vantage.agent_id if vantage.scope == "agent" else "", vantage.region], 1.0)
    yield status
    yield region_up
    yield affected
    yield impaired
    yield GaugeMetricFamily("probenet_checks", "Checks in the latest evaluation.", value=len(verdicts))
    yield GaugeMetricFamily(
        "probenet_check_series_limited",
        "1 when only non-ok checks are exported (more checks than metrics.max_check_series).",
        value=int(limited),
    )
