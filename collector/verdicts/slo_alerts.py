"""SLO burn-rate alerts, the SRE workbook's multi-window kind, as events through the sinks.

Every `every` seconds, for each check with an `slo:` (none: nothing runs): `fast_burn` when the
last hour and the last 6 minutes both burn the error budget at 14.4x or faster, `slow_burn` when
the last 6 hours and 30 minutes both burn at 6x (collector.verdicts.availability.burn_alert, from
the same verdict history as the report). An alert is an event of kind `slo_burn` (status
`fast_burn` | `slow_burn`, the rates in its cause's error) that opens when a check starts
burning, gets a version when it turns from one to the other, and closes when neither burns. Its
versions are stored, then handed to the notifier like every other event: each sink gets each
version once, a sink's `match` and maintenance windows apply as usual.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from collector.config import CollectorConfig
from collector.errors import StoreError
from collector.store import Store
from collector.store.events import insert_events, open_event_rows
from collector.verdicts.availability import burn_alert
from collector.verdicts.events import KIND_SLO, Event, event_from_row, event_id, event_key
from collector.verdicts.model import Cause
from collector.verdicts.notify import Notifier
from collector.verdicts.report import burn_rates, scope_of

log = logging.getLogger(__name__)

EVERY_S = 60.0


def _rates_text(rates: dict[str, float | None]) -> str:
    shown = ", ".join(f"{name} {rate:.1f}x" for name, rate in rates.items() if rate is not None)
    return f"error budget burn rate {shown}"


class SloAlerts:
    def __init__(
        self,
        store: Store,
        config: Callable[[], CollectorConfig],
        notifier: Notifier | None,
        every: float = EVERY_S,
    ) -> None:
        self.store = store
        self.config = config
        self.notifier = notifier
        self.every = every
        self.open: dict[str, Event] | None = None  # check -> latest version, once resumed

    async def run(self) -> None:
        while True:
            try:
                await self.tick(time.time())
            except StoreError as exc:
                log.warning("slo alerts: %s", exc)
            await asyncio.sleep(self.every)

    async def tick(self, now: float) -> list[Event]:
        """One evaluation: the versions it made (stored and submitted)."""
        config = self.config()
        if self.open is None:
            rows = await self.store.run(open_event_rows, self.store)
            self.open = {e.check: e for e in map(event_from_row, rows) if e.kind == KIND_SLO}
        if not config.slos and not self.open:
            return []
        scope = scope_of(config, "*", now)
        scope = dataclasses.replace(scope, checks=tuple(c for c in scope.checks if c in config.slos))
        rates = await self.store.run(burn_rates, self.store, scope, now) if scope.checks else {}
        versions = self.changes(rates, now)
        if versions:
            await self.store.run(insert_events, self.store, versions)
            if self.notifier:
                self.notifier.submit(versions)
        return versions

    def changes(self, rates: dict[str, dict[str, float | None]], now: float) -> list[Event]:
        assert self.open is not None
        out = []
        for check in sorted(set(rates) | set(self.open)):
            alert = burn_alert(rates.get(check, {}))
            current = self.open.get(check)
            version = self._next(check, current, alert, rates.get(check, {}), now)
            if version is None:
                continue
            out.append(version)
            if version.closed_at is None:
                self.open[check] = version
            else:
                del self.open[check]
        return out

    @staticmethod
    def _next(
        check: str, current: Event | None, alert: str | None, rates: dict[str, Any], now: float
    ) -> Event | None:
        if current is None:
            if alert is None:
                return None
            key = event_key(KIND_SLO, check, "", "", ())
            cause = Cause(alert, "", _rates_text(rates))
            return Event(event_id(key, now), 1, KIND_SLO, check, alert, "", (), cause, now, now)
        if alert is None:
            return dataclasses.replace(current, version=current.version + 1, updated_at=now, closed_at=now)
        if alert == current.status:
            return None
        cause = Cause(alert, "", _rates_text(rates))
        return dataclasses.replace(
            current, version=current.version + 1, status=alert, cause=cause, updated_at=now
        )
