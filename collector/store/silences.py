"""Rows of `silences` (ad hoc maintenance windows made through the API): written, listed, deleted.

A row carries the window's fields; collector.maintenance.Window is built from them by the caller.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from collector.store.clickhouse import Store

COLUMNS = (
    "silence_id",
    "name",
    "checks",
    "regions",
    "starts_at",
    "ends_at",
    "comment",
    "created_by",
    "deleted",
    "updated_at",
)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _ts(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def insert_silence(store: Store, fields: dict[str, Any], deleted: bool = False) -> None:
    """`fields`: id, name, checks, regions, start, end (epoch seconds), comment, created_by."""
    row = [
        fields["id"],
        fields["name"],
        list(fields["checks"]),
        list(fields["regions"]),
        _dt(fields["start"]),
        _dt(fields["end"]),
        fields.get("comment", ""),
        fields.get("created_by", ""),
        int(deleted),
        datetime.now(UTC),
    ]
    store.insert("silences", [row], COLUMNS)


def silence_rows(store: Store, ending_after: float) -> list[dict[str, Any]]:
    """Silences not deleted that end after `ending_after`, soonest start first."""
    _, rows = store.query(
        f"SELECT {', '.join(COLUMNS[:8])} FROM silences FINAL WHERE deleted = 0 "
        "AND ends_at > fromUnixTimestamp64Milli({after:Int64}) ORDER BY starts_at, silence_id",
        {"after": round(ending_after * 1000)},
    )
    return [_fields(r) for r in rows]


def silence_by_id(store: Store, silence_id: str) -> dict[str, Any] | None:
    _, rows = store.query(
        f"SELECT {', '.join(COLUMNS)} FROM silences FINAL WHERE silence_id = {{id:String}}",
        {"id": silence_id},
    )
    return _fields(rows[0]) if rows and not rows[0][8] else None


def _fields(r: Any) -> dict[str, Any]:
    return {
        "id": r[0],
        "name": r[1],
        "checks": tuple(r[2]),
        "regions": tuple(r[3]),
        "start": _ts(r[4]),
        "end": _ts(r[5]),
        "comment": r[6],
        "created_by": r[7],
    }
