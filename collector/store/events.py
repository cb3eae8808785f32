"""Rows of `outage_events` (one per event version) and `event_notifications` (one per version
sent to a webhook): their columns and the conversions in and out of Python values.

The store knows the row format, not the verdict engine's Event class: rows are written from
anything shaped like an event and read back as the Event's field values (verdicts builds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from collector.store.clickhouse import Store

EVENT_COLUMNS = (
    "event_id",
    "version",
    "kind",
    "check_id",
    "agent_id",
    "status",
    "scope",
    "regions",
    "cause_class",
    "cause_host",
    "cause_error",
    "opened_at",
    "updated_at",
    "closed_at",
    "peak_status",
    "peak_scope",
    "peak_regions",
    "recovering_regions",
)
NOTIFY_COLUMNS = ("sink", "event_id", "version", "delivered", "attempts", "error", "sent_at")


class CauseLike(Protocol):
    cls: str
    host: str
    error: str


class EventLike(Protocol):
    """What an event version must carry to be stored (collector.verdicts.Event has it)."""

    id: str
    version: int
    kind: str
    check: str
    agent: str
    status: str
    scope: str
    regions: tuple[str, ...]
    cause: CauseLike | None
    opened_at: float
    updated_at: float
    closed_at: float | None
    peak_status: str
    peak_scope: str
    peak_regions: tuple[str, ...]
    recovering_regions: tuple[str, ...]


class DeliveryLike(Protocol):
    @property
    def delivered(self) -> bool: ...
    @property
    def attempts(self) -> int: ...
    @property
    def error(self) -> str: ...


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def event_row(event: EventLike) -> list[Any]:
    cause = event.cause
    return [
        event.id,
        event.version,
        event.kind,
        event.check,
        event.agent,
        event.status,
        event.scope,
        list(event.regions),
        cause.cls if cause else "",
        cause.host if cause else "",
        cause.error if cause else "",
        _dt(event.opened_at),
        _dt(event.updated_at),
        _dt(event.closed_at),
        event.peak_status,
        event.peak_scope,
        list(event.peak_regions),
        list(event.recovering_regions),
    ]


def event_fields(row: Sequence[Any]) -> dict[str, Any]:
    """An `outage_events` row (EVENT_COLUMNS) as the Event's fields; `cause` is (class, host,
    error) or None."""
    (
        event_id,
        version,
        kind,
        check,
        agent,
        status,
        scope,
        regions,
        cls,
        host,
        error,
        opened,
        updated,
        closed,
        peak_status,
        peak_scope,
        peak_regions,
        recovering,
    ) = row[:18]
    return {
        "id": event_id,
        "version": int(version),
        "kind": kind,
        "check": check,
        "status": status,
        "scope": scope,
        "regions": tuple(sorted(regions)),
        "cause": (cls, host, error) if cls else None,
        "opened_at": _ts(opened) or 0.0,
        "updated_at": _ts(updated) or 0.0,
        "closed_at": _ts(closed),
        "agent": agent,
        # Empty in rows from before the peak existed: the event's own state (Event.to_dict).
        "peak_status": peak_status,
        "peak_scope": peak_scope,
        "peak_regions": tuple(sorted(peak_regions)),
        "recovering_regions": tuple(sorted(recovering)),
    }


def insert_events(store: Store, events: Sequence[EventLike]) -> None:
    if events:
        store.insert("outage_events", [event_row(e) for e in events], EVENT_COLUMNS)


def open_event_rows(store: Store) -> list[tuple[Any, ...]]:
    _, rows = store.query(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM outage_events_latest WHERE closed_at IS NULL"
    )
    return rows


def sent_versions(store: Store, sink: str, since: float) -> set[tuple[str, int]]:
    _, rows = store.query(
        "SELECT event_id, version FROM event_notifications WHERE sink = {sink:String} "
        "AND sent_at >= fromUnixTimestamp64Milli({since:Int64})",
        {"sink": sink, "since": round(since * 1000)},
    )
    return {(r[0], int(r[1])) for r in rows}


def reached_events(store: Store, sink: str, since: float) -> dict[str, int]:
    """The highest version of each event `sink` was sent (or tried to be), for events recorded
    since `since` and for every event still open however old; a version recorded with no
    attempt is one its filter or a maintenance window held back."""
    _, rows = store.query(
        "SELECT event_id, max(version) FROM event_notifications FINAL WHERE sink = {sink:String} "
        "AND attempts > 0 AND (sent_at >= fromUnixTimestamp64Milli({since:Int64}) OR event_id IN "
        "(SELECT event_id FROM outage_events_latest WHERE closed_at IS NULL)) GROUP BY event_id",
        {"sink": sink, "since": round(since * 1000)},
    )
    return {r[0]: int(r[1]) for r in rows}


def unsent_event_rows(store: Store, sink: str, since: float) -> list[tuple[Any, ...]]:
    """Versions recorded since `since` that `sink` has no notification record of, oldest first."""
    _, rows = store.query(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM outage_events FINAL "
        "WHERE recorded_at >= fromUnixTimestamp64Milli({since:Int64}) AND (event_id, version) NOT IN "
        "(SELECT event_id, version FROM event_notifications WHERE sink = {sink:String}) "
        "ORDER BY updated_at, event_id, version",
        {"sink": sink, "since": round(since * 1000)},
    )
    return rows


def record_notification(store: Store, sink: str, event: EventLike, delivery: DeliveryLike) -> None:
    store.insert(
        "event_notifications",
        [
            [
                sink,
                event.id,
                event.version,
                int(delivery.delivered),
                delivery.attempts,
                delivery.error[:500],
                datetime.now(UTC),
            ]
        ],
        NOTIFY_COLUMNS,
    )
