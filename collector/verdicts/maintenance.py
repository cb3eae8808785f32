"""The maintenance windows in effect: the config's and the silences made through the API.

The config's windows come through a getter, so a reload counts at once; silences are read from
the store at most every `refresh_s`, or on the next refresh after the API changed them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from collector.errors import StoreError
from collector.maintenance import Window, covering
from collector.store import Store
from collector.store.silences import silence_rows
from collector.verdicts.events import Event

log = logging.getLogger(__name__)


def silence_window(fields: Mapping[str, Any]) -> Window:
    """A silence row's fields (collector.store.silences) as a window."""
    return Window(
        str(fields["name"]),
        tuple(fields["checks"]),
        tuple(fields["regions"]),
        float(fields["start"]),
        float(fields["end"]),
        id=str(fields["id"]),
        comment=str(fields.get("comment", "")),
        created_by=str(fields.get("created_by", "")),
    )


class MaintenanceBook:
    def __init__(
        self, store: Store, config_windows: Callable[[], Sequence[Window]], refresh_s: float = 5.0
    ) -> None:
        self.store = store
        self.config_windows = config_windows
        self.refresh_s = refresh_s
        self.silences: tuple[Window, ...] = ()
        self._read_at = float("-inf")

    def invalidate(self) -> None:
        """The silences changed (the API made or deleted one): the next refresh reads them."""
        self._read_at = float("-inf")

    async def refresh(self) -> None:
        if time.monotonic() - self._read_at < self.refresh_s:
            return
        try:
            rows = await self.store.run(silence_rows, self.store, time.time())
        except StoreError as exc:  # keep the last known silences: better than none
            log.warning("maintenance: cannot read silences: %s", exc)
            return
        self.silences = tuple(silence_window(r) for r in rows)
        self._read_at = time.monotonic()

    def windows(self) -> list[Window]:
        return [*self.config_windows(), *self.silences]

    def covering(self, event: Event, now: float) -> Window | None:
        return covering(self.windows(), event.check, event.regions, now)
