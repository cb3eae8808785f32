"""Maintenance windows: the recurring syntax (days, ranges, midnight, zones), what a window
covers (checks by id or glob, every affected region inside the window's), and every bad entry
in collector.yaml named by file, key and reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from collector.config import load_config
from collector.errors import ConfigError
from collector.maintenance import Window, covering, parse_every

UTC = dt.UTC


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_sunday_night_window() -> None:
    every = parse_every("sun 02:00-04:00 UTC", "f", "k")
    assert every.span_at(at("2026-12-06T01:59:59+00:00")) is None  # a Sunday
    assert every.span_at(at("2026-12-06T02:00:00+00:00")) == (
        at("2026-12-06T02:00:00+00:00"),
        at("2026-12-06T04:00:00+00:00"),
    )
    assert every.span_at(at("2026-12-06T04:00:00+00:00")) is None
    assert every.span_at(at("2026-12-07T03:00:00+00:00")) is None  # Monday


def test_range_crossing_midnight_in_a_zone() -> None:
    every = parse_every("mon-fri 22:30-01:00 Europe/Rome", "f", "k")
    # Friday 22:30 in Rome (UTC+1 in December) runs into Saturday 01:00
    assert every.span_at(at("2026-12-05T00:30:00+01:00")) is not None
    assert every.span_at(at("2026-12-06T00:30:00+01:00")) is None  # Saturday night: not a weekday start
    assert every.span_at(at("2026-12-07T22:29:00+01:00")) is None
    assert every.span_at(at("2026-12-07T22:30:00+01:00")) is not None


def test_lists_and_daily_and_default_zone() -> None:
    assert parse_every("sat,sun 00:00-06:00", "f", "k").days == frozenset({5, 6})
    assert parse_every("fri-mon 00:00-06:00", "f", "k").days == frozenset({4, 5, 6, 0})
    daily = parse_every("daily 03:00-03:15", "f", "k")
    assert daily.zone == "UTC" and daily.span_at(at("2026-12-02T03:10:00+00:00")) is not None


def test_what_a_window_covers() -> None:
    window = Window("w", ("shop-*", "api"), ("it", "fr"), 0.0, 100.0)
    assert window.covers("shop-page", ("it",))
    assert window.covers("api", ("fr", "it"))
    assert not window.covers("api", ("fr", "it", "de"))  # reaches past the maintained regions
    assert not window.covers("docs", ("it",))
    assert not window.covers("", ("it",))  # a vantage event needs "*"
    assert Window("all", ("*",)).covers("", ("de",))
    assert covering([window], "api", ("it",), 50.0) is window
    assert covering([window], "api", ("it",), 100.0) is None


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text("insecure: true\n" + text)
    return path


def test_config_windows(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "maintenance:\n"
            "  - {name: upgrade, checks: [shop], regions: [it], start: 2026-12-06T02:00:00Z, end: '2026-12-06T04:00:00+01:00'}\n"
            "  - {name: weekly, checks: ['*'], every: 'sun 02:00-04:00 UTC'}\n",
        )
    )
    upgrade, weekly = config.maintenance
    assert (upgrade.start, upgrade.end) == (at("2026-12-06T02:00:00+00:00"), at("2026-12-06T03:00:00+00:00"))
    assert weekly.every is not None and weekly.every.text == "sun 02:00-04:00 UTC"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("maintenance: {name: x}\n", "maintenance", "expected a list"),
        ("maintenance: [{checks: [a], every: 'sun 02:00-04:00'}]\n", "maintenance[0].name", "is required"),
        ("maintenance: [{name: x, every: 'sun 02:00-04:00'}]\n", "maintenance[0].checks", "is required"),
        ("maintenance: [{name: x, checks: a, every: 'sun 02:00-04:00'}]\n", "maintenance[0].checks", "a list"),
        ("maintenance: [{name: x, checks: [a], every: 'sunday 2am'}]\n", "maintenance[0].every", "expected \"<days> HH:MM-HH:MM"),
        ("maintenance: [{name: x, checks: [a], every: 'sun 02:00-25:00'}]\n", "maintenance[0].every", "bad time of day"),
        ("maintenance: [{name: x, checks: [a], every: 'xyz 02:00-04:00'}]\n", "maintenance[0].every", "unknown day 'xyz'"),
        ("maintenance: [{name: x, checks: [a], every: 'sun 02:00-04:00 Mars/Base'}]\n", "maintenance[0].every", "unknown time zone"),
        ("maintenance: [{name: x, checks: [a], every: 'sun 02:00-02:00'}]\n", "maintenance[0].every", "the same time"),
        ("maintenance: [{name: x, checks: [a], start: 2026-12-06T02:00:00Z}]\n", "maintenance[0].end", "is required"),
        ("maintenance: [{name: x, checks: [a], start: '2026-12-06 02:00', end: 2026-12-06T04:00:00Z}]\n", "maintenance[0].start", "no time zone"),
        ("maintenance: [{name: x, checks: [a], start: soon, end: 2026-12-06T04:00:00Z}]\n", "maintenance[0].start", "ISO 8601"),
        ("maintenance: [{name: x, checks: [a], start: 2026-12-06T04:00:00Z, end: 2026-12-06T02:00:00Z}]\n", "maintenance[0].end", "after start"),
        ("maintenance: [{name: x, checks: [a], every: 'sun 02:00-04:00', start: 2026-12-06T02:00:00Z}]\n", "maintenance[0].every", "not both"),
        ("maintenance: [{name: x, checks: [a], every: 'sun 02:00-04:00', region: [it]}]\n", "maintenance[0].region", "unknown key"),
    ],
)  # fmt: skip
def test_bad_windows_name_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.file, info.value.key) == (str(path), key)
    assert reason in info.value.reason
