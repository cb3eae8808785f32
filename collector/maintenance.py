"""Maintenance windows and silences: when events of some checks (and regions) notify nobody.

A window names the checks it covers (ids or fnmatch globs; `*` is every check and the vantage
events, which have no check id) and optionally regions; an event is covered when its check
matches and every region it affects is one of the window's (an outage reaching past the
maintained regions is news). A window is one span (`start`, `end`: ISO 8601 with a zone) or
recurring, `every: "<days> HH:MM-HH:MM [zone]"`:

    every: "sun 02:00-04:00 UTC"          # Sundays
    every: "mon-fri 22:30-01:00 Europe/Rome"   # crosses midnight: ends the next morning
    every: "sat,sun 00:00-06:00"          # zone defaults to UTC
    every: "daily 03:00-03:15 UTC"

Windows come from collector.yaml (`maintenance:`) and silences from the API (stored); both are
this one type. Pure: no clock, no store.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collector.errors import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EVERY = re.compile(r"^\s*(\S+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$")


@dataclass(frozen=True)
class Recurrence:
    days: frozenset[int]  # 0 = Monday
    start: dt.time
    end: dt.time
    zone: str = "UTC"
    text: str = ""

    def span_at(self, now: float) -> tuple[float, float] | None:
        """The occurrence in effect at `now`, as (start, end) epoch seconds, or None."""
        tz = ZoneInfo(self.zone)
        local = dt.datetime.fromtimestamp(now, tz)
        for back in (0, 1):  # an occurrence that began yesterday may cross midnight
            day = local.date() - dt.timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            start = dt.datetime.combine(day, self.start, tz)
            end = dt.datetime.combine(day, self.end, tz)
            if end <= start:
                end += dt.timedelta(days=1)
            if start <= local < end:
                return start.timestamp(), end.timestamp()
        return None

    def spans_between(self, start: float, end: float) -> list[tuple[float, float]]:
        """Every occurrence overlapping [start, end), as (start, end) epoch seconds."""
        tz = ZoneInfo(self.zone)
        day = dt.datetime.fromtimestamp(start, tz).date() - dt.timedelta(days=1)
        last = dt.datetime.fromtimestamp(end, tz).date()
        found = []
        while day <= last:
            if day.weekday() in self.days:
                begin = dt.datetime.combine(day, self.start, tz)
                finish = dt.datetime.combine(day, self.end, tz)
                if finish <= begin:
                    finish += dt.timedelta(days=1)
                if begin.timestamp() < end and finish.timestamp() > start:
                    found.append((begin.timestamp(), finish.timestamp()))
            day += dt.timedelta(days=1)
        return found


@dataclass(frozen=True)
class Window:
    name: str
    checks: tuple[str, ...]
    regions: tuple[str, ...] = ()
    start: float | None = None
    end: float | None = None
    every: Recurrence | None = None
    id: str = ""  # a silence's id; "" for a window from the config
    comment: str = ""
    created_by: str = ""

    def span_at(self, now: float) -> tuple[float, float] | None:
        if self.every is not None:
            return self.every.span_at(now)
        assert self.start is not None and self.end is not None
        return (self.start, self.end) if self.start <= now < self.end else None

    def spans_between(self, start: float, end: float) -> list[tuple[float, float]]:
        """The window's time inside [start, end): its span, or each occurrence overlapping it."""
        if self.every is not None:
            return self.every.spans_between(start, end)
        assert self.start is not None and self.end is not None
        return [(self.start, self.end)] if self.start < end and self.end > start else []

    def active(self, now: float) -> bool:
        return self.span_at(now) is not None

    def covers(self, check: str, regions: Iterable[str]) -> bool:
        if not any(fnmatch.fnmatchcase(check, glob) for glob in self.checks):
            return False
        return not self.regions or set(regions) <= set(self.regions)

    def to_dict(self, now: float) -> dict[str, object]:
        span = self.span_at(now)
        return {
            "id": self.id,
            "name": self.name,
            "checks": list(self.checks),
            "regions": list(self.regions),
            "start": _iso(self.start),
            "end": _iso(self.end),
            "every": self.every.text if self.every else None,
            "active": span is not None,
            "active_until": _iso(span[1]) if span else None,
            "comment": self.comment,
            "created_by": self.created_by,
        }


def covering(windows: Iterable[Window], check: str, regions: Iterable[str], now: float) -> Window | None:
    """The first window active at `now` that covers the check and regions, if any."""
    regions = tuple(regions)
    return next((w for w in windows if w.covers(check, regions) and w.active(now)), None)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_every(text: object, file: str, key: str) -> Recurrence:
    match = _EVERY.match(str(text)) if isinstance(text, str) else None
    if not match:
        raise ConfigError(
            file, key, f'expected "<days> HH:MM-HH:MM [zone]" like "sun 02:00-04:00 UTC", got {text!r}'
        )
    days_text, h1, m1, h2, m2, zone = match.groups()
    try:
        start, end = dt.time(int(h1), int(m1)), dt.time(int(h2), int(m2))
    except ValueError as exc:
        raise ConfigError(file, key, f"bad time of day in {text!r}: {exc}") from exc
    if start == end:
        raise ConfigError(file, key, f"start and end are the same time in {text!r}")
    zone = zone or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(file, key, f"unknown time zone {zone!r}") from exc
    return Recurrence(_parse_days(days_text, file, key), start, end, zone, str(text).strip())


def _parse_days(text: str, file: str, key: str) -> frozenset[int]:
    if text.lower() in ("daily", "*"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ConfigError(
                file, key, f"unknown day {part!r}; days are {', '.join(DAYS)}, ranges like mon-fri, or daily"
            )
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    return frozenset(days)


def parse_instant(value: object, file: str, key: str) -> float:
    """An ISO 8601 time with a zone (a YAML timestamp or a string) as epoch seconds."""
    if isinstance(value, dt.datetime):
        when = value
    else:
        try:
            when = dt.datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise ConfigError(
                file, key, f"expected an ISO 8601 time like 2026-12-06T02:00:00Z, got {value!r}"
            ) from exc
    if when.tzinfo is None:
        raise ConfigError(file, key, f"{value!s} has no time zone: add Z or an offset like +01:00")
    return when.timestamp()


def _strings(raw: object, file: str, key: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
        raise ConfigError(file, key, "expected a list of names")
    return tuple(raw)


def parse_window(raw: object, file: str, key: str, id: str = "", created_by: str = "") -> Window:
    if not isinstance(raw, Mapping):
        raise ConfigError(file, key, "expected a mapping")
    known = {"name", "checks", "regions", "start", "end", "every", "comment"}
    for name in raw:
        if name not in known:
            raise ConfigError(file, f"{key}.{name}", f"unknown key; known: {sorted(known)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(file, f"{key}.name", "is required")
    checks = _strings(raw.get("checks"), file, f"{key}.checks")
    if not checks:
        raise ConfigError(file, f"{key}.checks", 'is required: check ids or globs ("*" for every check)')
    regions = _strings(raw.get("regions"), file, f"{key}.regions")
    comment = str(raw.get("comment", ""))
    if "every" in raw:
        if "start" in raw or "end" in raw:
            raise ConfigError(file, f"{key}.every", "give either every or start and end, not both")
        every = parse_every(raw["every"], file, f"{key}.every")
        return Window(name, checks, regions, every=every, comment=comment, id=id, created_by=created_by)
    for part in ("start", "end"):
        if part not in raw:
            raise ConfigError(file, f"{key}.{part}", "is required (or a recurring `every`)")
    start = parse_instant(raw["start"], file, f"{key}.start")
    end = parse_instant(raw["end"], file, f"{key}.end")
    if end <= start:
        raise ConfigError(file, f"{key}.end", "must be after start")
    return Window(name, checks, regions, start, end, comment=comment, id=id, created_by=created_by)


def parse_windows(raw: object, file: str, key: str = "maintenance") -> tuple[Window, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(file, key, "expected a list")
    return tuple(parse_window(w, file, f"{key}[{i}]") for i, w in enumerate(raw))
