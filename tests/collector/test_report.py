"""The availability report on a real embedded store: the README's worked example, recomputed
from the raw rows with plain SQL, and the slot rollup's own rules.

The example (README, "Availability, SLOs and error budgets"): one UTC day of `shop`, probed every
minute from `it` and `fr`. `it` is down 08:00-08:45 (tls_cert_expired on static.shop.example),
then partial until 09:15; `fr` sends nothing 10:00-10:30 and is partial 14:00-15:00
(subresource_failed); a maintenance window covers 20:00-21:00; partial time weighs 0.5.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.config import config_from_mapping
from collector.maintenance import Window, parse_window
from collector.store import Store
from collector.verdicts.availability import burn_alert
from collector.verdicts.report import daily, report, scope_of

HOUR = 3600


def yesterday() -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1)


DAY = yesterday()
T0 = DAY.timestamp()

# One result a minute and region; `it` fails, then is partial; `fr` is silent, then partial.
RAW_SQL = """
INSERT INTO probe_results (started_at, received_at, check_id, probe, target, agent_id, region, seq,
                           outcome, failure_class, failure_host)
SELECT toDateTime64({t0:Int64} + (number AS m) * 60 + 7, 3, 'UTC') AS at, at, 'shop', 'page', 'https://shop.example/',
       concat(region, '-1'), region, m,
       multiIf(region = 'it' AND m >= 480 AND m < 525, 'failed',
               region = 'it' AND m >= 525 AND m < 555, 'partial',
               region = 'fr' AND m >= 840 AND m < 900, 'partial', 'success'),
       multiIf(region = 'it' AND m >= 480 AND m < 555, 'tls_cert_expired',
               region = 'fr' AND m >= 840 AND m < 900, 'subresource_failed', ''),
       if(region = 'it' AND m >= 480 AND m < 555, 'static.shop.example', '')
FROM numbers(1440) ARRAY JOIN ['it', 'fr'] AS region
WHERE NOT (region = 'fr' AND m >= 600 AND m < 630)
"""
EVENTS_SQL = """
INSERT INTO outage_events (event_id, version, kind, check_id, status, scope, regions, cause_class,
                           cause_host, opened_at, updated_at, closed_at)
VALUES
 ('e1', 1, 'check', 'shop', 'outage', 'regional', ['it'], 'tls_cert_expired', 'static.shop.example',
  {t8:DateTime64(3)}, {t8:DateTime64(3)}, NULL),
 ('e1', 2, 'check', 'shop', 'partial', 'regional', ['it'], 'tls_cert_expired', 'static.shop.example',
  {t8:DateTime64(3)}, {t845:DateTime64(3)}, NULL),
 ('e1', 3, 'check', 'shop', 'partial', 'regional', ['it'], 'tls_cert_expired', 'static.shop.example',
  {t8:DateTime64(3)}, {t915:DateTime64(3)}, {t915:DateTime64(3)}),
 ('e2', 1, 'check', 'shop', 'partial', 'regional', ['fr'], 'subresource_failed', 'cdn.shop.example',
  {t14:DateTime64(3)}, {t14:DateTime64(3)}, NULL),
 ('e2', 2, 'check', 'shop', 'partial', 'regional', ['fr'], 'subresource_failed', 'cdn.shop.example',
  {t14:DateTime64(3)}, {t15:DateTime64(3)}, {t15:DateTime64(3)})
"""
CONFIG = {
    "insecure": True,
    "availability": {"partial_weight": 0.5},
    "checks": [
        {"id": "shop", "probe": "page", "target": "https://shop.example/", "interval": "60s",
         "slo": {"target": 90, "window": "1d"}},
        {"id": "video", "probe": "http", "target": "https://video.example/"},
    ],
    "maintenance": [
        {"name": "db-upgrade", "checks": ["shop"], "start": (DAY + timedelta(hours=20)).isoformat(),
         "end": (DAY + timedelta(hours=21)).isoformat()}
    ],
}  # fmt: skip


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(f"chdb://{tmp_path_factory.mktemp('report') / 'store'}")
    store.migrate()
    store.command(RAW_SQL, {"t0": int(T0)})
    store.command(
        EVENTS_SQL,
        {"t8": at(8), "t845": at(8.75), "t915": at(9.25), "t14": at(14), "t15": at(15)},
    )
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def answer(store: Store) -> dict[str, Any]:
    scope = scope_of(config_from_mapping(CONFIG, "collector.yaml"), "*", T0 + 86_400)
    return report(store, scope, 86_400, T0 + 86_400)


def scalar(store: Store, sql: str, **params: Any) -> Any:
    return store.query(sql, params)[1][0][0]


def no_data_s(store: Store, region: str | None) -> float:
    """Plain SQL on raw rows: 6-minute slots of the day without a result, outside 20:00-21:00."""
    where = "AND region = {region:String}" if region else ""
    with_data = scalar(
        store,
        "SELECT uniqExact(intDiv(toUnixTimestamp(started_at) - {t0:Int64}, 360)) FROM probe_results "
        f"WHERE check_id = 'shop' AND toDate(started_at) = {{day:Date}} {where} "
        "AND NOT (toHour(started_at) = 20)",
        t0=int(T0),
        day=DAY.date(),
        region=region or "",
    )
    return (240 - 10 - with_data) * 360.0


def event_seconds(store: Store, status: str, region: str | None) -> float:
    """Plain SQL on outage_events: each version lasts until the next one (or the close)."""
    where = "AND has(regions, {region:String})" if region else ""
    return float(
        scalar(
            store,
            "SELECT sum(dateDiff('second', updated_at, next)) FROM ("
            "  SELECT status, regions, updated_at, leadInFrame(updated_at, 1, updated_at) OVER "
            "    (PARTITION BY event_id ORDER BY version ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next"
            "  FROM outage_events FINAL)"
            f" WHERE status = {{status:String}} {where}",
            status=status,
            region=region or "",
        )
    )


def expected(store: Store, region: str | None) -> dict[str, float]:
    down, degraded = event_seconds(store, "outage", region), event_seconds(store, "partial", region)
    no_data, excluded = no_data_s(store, region), 3600.0
    measured = 86_400 - excluded - no_data
    return {
        "down_s": down,
        "degraded_s": degraded,
        "no_data_s": no_data,
        "excluded_s": excluded,
        "measured_s": measured,
        "availability": round(100 * (1 - (down + 0.5 * degraded) / measured), 4),
    }


def figures(row: dict[str, Any]) -> dict[str, float]:
    return {
        k: row[k] for k in ("down_s", "degraded_s", "no_data_s", "excluded_s", "measured_s", "availability")
    }


def test_the_worked_example_recomputed_from_raw_rows(store: Store, answer: dict[str, Any]) -> None:
    shop = next(c for c in answer["checks"] if c["check"] == "shop")
    assert figures(shop) == expected(store, None)
    regions = {r["region"]: r for r in shop["regions"]}
    assert figures(regions["it"]) == expected(store, "it")
    assert figures(regions["fr"]) == expected(store, "fr")
    # The README's numbers.
    assert figures(shop) == {
        "down_s": 2700.0, "degraded_s": 5400.0, "no_data_s": 0.0, "excluded_s": 3600.0,
        "measured_s": 82800.0, "availability": 93.4783,
    }  # fmt: skip
    assert regions["it"]["availability"] == 95.6522
    assert (regions["fr"]["no_data_s"], regions["fr"]["availability"]) == (1800.0, 97.7778)


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> dict[str, dict[str, float]]:
    """The worked example's table in the README: row (`shop`, `shop` in `it`...) -> figures."""
    text = README.read_text().split("### Worked example", 1)[1]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and cells[0].startswith("`shop`"):
            seconds = [float(re.sub(r"[^0-9.]", "", c.split(" s")[0])) for c in cells[1:6]]
            availability = float(re.findall(r"\*\*([0-9.]+) %\*\*", cells[6])[0])
            rows[cells[0].replace("`", "")] = dict(
                zip(("down_s", "degraded_s", "excluded_s", "no_data_s", "measured_s"), seconds, strict=True),
                availability=availability,
            )
    return rows


def test_the_readme_shows_these_numbers(answer: dict[str, Any]) -> None:
    shop = next(c for c in answer["checks"] if c["check"] == "shop")
    regions = {r["region"]: r for r in shop["regions"]}
    example = readme_example()
    assert example == {
        "shop": figures(shop),
        "shop in it": figures(regions["it"]),
        "shop in fr": figures(regions["fr"]),
    }
    assert f"**{shop['slo']['budget_left']}**" in README.read_text()


def test_incidents_mttr_causes_and_worst_regions(answer: dict[str, Any]) -> None:
    shop = next(c for c in answer["checks"] if c["check"] == "shop")
    assert (shop["incidents"], shop["mttr_s"]) == (2, 4050.0)
    assert [(c["class"], c["host"], c["down_s"]) for c in answer["top_causes"]] == [
        ("tls_cert_expired", "static.shop.example", 2700.0),
        ("subresource_failed", "cdn.shop.example", 0.0),
    ]
    assert [r["region"] for r in answer["worst_regions"]] == ["it", "fr"]


def test_error_budget_and_burn_rates(answer: dict[str, Any]) -> None:
    slo = next(c for c in answer["checks"] if c["check"] == "shop")["slo"]
    # 5,400 bad seconds of 82,800 measured against 10 % allowed: 65.2 % of the budget is gone.
    assert slo["budget_left"] == round(1 - (5400 / 82800) / 0.10, 4) == 0.3478
    assert (slo["burn_1h"], slo["burn_6h"]) == (0.0, 0.0)


def test_a_check_without_data_is_never_up(answer: dict[str, Any]) -> None:
    video = next(c for c in answer["checks"] if c["check"] == "video")
    assert video["availability"] is None
    assert video["no_data_s"] == 86_400.0
    assert answer["checks"][-1]["check"] == "video"  # worst first, no data last


def test_daily_cells_carry_the_days_incidents(store: Store) -> None:
    scope = scope_of(config_from_mapping(CONFIG, "collector.yaml"), "shop", T0 + 86_400)
    answer = daily(store, scope, 3, T0 + 86_400 + 600)
    cells = answer["checks"][0]["days"]
    assert [c["day"][:10] for c in cells] == [
        (DAY - timedelta(days=1)).date().isoformat(),
        DAY.date().isoformat(),
        (DAY + timedelta(days=1)).date().isoformat(),
    ]
    assert cells[0]["availability"] is None
    assert cells[1]["availability"] == 93.4783
    assert [(i["id"], i["status"], i["cause"], i["regions"]) for i in cells[1]["incidents"]] == [
        ("e1", "outage", "tls_cert_expired", ["it"]),
        ("e2", "partial", "subresource_failed", ["fr"]),
    ]


def test_burn_rates_over_the_last_hours(store: Store) -> None:
    """An outage in the last hour burns the 1 h window 6 times faster than the 6 h window."""
    now = (datetime.now(UTC).timestamp() // 360) * 360
    store.command(
        "INSERT INTO probe_results (started_at, received_at, check_id, agent_id, region, seq, outcome) "
        "SELECT toDateTime64({now:Int64} - 6 * 3600 + number * 60, 3, 'UTC') AS t, t, 'burn', "
        "'it-1', 'it', number, 'success' FROM numbers(360)",
        {"now": int(now)},
    )
    store.command(
        "INSERT INTO outage_events (event_id, version, kind, check_id, status, scope, regions, "
        "opened_at, updated_at) VALUES ('b', 1, 'check', 'burn', 'outage', 'global', ['it'], "
        "fromUnixTimestamp64Milli({t:Int64}), fromUnixTimestamp64Milli({t:Int64}))",
        {"t": int((now - 1800) * 1000)},
    )
    config = config_from_mapping(
        {"insecure": True, "checks": [{"id": "burn", "probe": "http", "target": "https://s/",
                                       "slo": {"target": 99.9, "window": "30d"}}]},
        "collector.yaml",
    )  # fmt: skip
    slo = report(store, scope_of(config, "*", now), 86_400, now)["checks"][0]["slo"]
    assert slo["burn_1h"] == round(0.5 / 0.001, 3) == 500.0
    assert slo["burn_6h"] == round((1800 / 21600) / 0.001, 3)
    assert slo["burn_6m"] == slo["burn_30m"] == 1000.0  # still down
    assert slo["alert"] == "fast_burn"


def test_burn_alerts_need_both_windows() -> None:
    """A long window burning fast is not an alert once the short window has recovered."""
    assert burn_alert({"1h": 20.0, "6m": 15.0, "6h": 2.0, "30m": 9.0}) == "fast_burn"
    assert burn_alert({"1h": 20.0, "6m": 0.0, "6h": 2.0, "30m": 0.0}) is None
    assert burn_alert({"1h": 10.0, "6m": 10.0, "6h": 7.0, "30m": 6.5}) == "slow_burn"
    assert burn_alert({"1h": None, "6m": None, "6h": None, "30m": None}) is None


def test_an_impaired_region_is_excluded_for_that_region_only(store: Store) -> None:
    """While `nl` is an impaired vantage point its time is excluded (and its outage not held
    against the target); the check as a whole and `be` count as usual."""
    store.command(
        "INSERT INTO probe_results (started_at, received_at, check_id, agent_id, region, seq, outcome) "
        "SELECT toDateTime64({t0:Int64} + number * 60, 3, 'UTC') AS t, t, 'vant', concat(r, '-1'), r, "
        "number, 'success' FROM numbers(1440) ARRAY JOIN ['nl', 'be'] AS r",
        {"t0": int(T0)},
    )
    store.command(
        "INSERT INTO outage_events (event_id, version, kind, check_id, agent_id, status, scope, regions, "
        "opened_at, updated_at, closed_at) VALUES "
        "('v', 1, 'vantage', '', '', 'impaired', 'region', ['nl'], {t6:DateTime64(3)}, {t6:DateTime64(3)}, "
        "{t7:DateTime64(3)}), "
        "('o', 1, 'check', 'vant', '', 'outage', 'undetermined', ['nl'], {t6:DateTime64(3)}, "
        "{t6:DateTime64(3)}, NULL), "
        "('o', 2, 'check', 'vant', '', 'outage', 'undetermined', ['nl'], {t6:DateTime64(3)}, "
        "{t630:DateTime64(3)}, {t630:DateTime64(3)})",
        {"t6": at(6), "t630": at(6.5), "t7": at(7)},
    )
    config = config_from_mapping(
        {"insecure": True, "checks": [{"id": "vant", "probe": "http", "target": "https://v/"}]},
        "collector.yaml",
    )
    vant = report(store, scope_of(config, "*", T0 + 86_400), 86_400, T0 + 86_400, regions="all")["checks"][0]
    regions = {r["region"]: r for r in vant["regions"]}
    assert (regions["nl"]["excluded_s"], regions["nl"]["down_s"], regions["nl"]["availability"]) == (
        3600.0,
        0.0,
        100.0,
    )
    assert (regions["be"]["excluded_s"], regions["be"]["down_s"]) == (0.0, 0.0)
    assert (vant["excluded_s"], vant["down_s"]) == (0.0, 1800.0)


def test_a_recurring_window_and_a_silence_are_excluded_too(store: Store) -> None:
    """`every: daily 20:00-21:00 UTC` excludes the same hour as the one-shot window, and so does a
    stored silence (POST /api/v1/silences) in its place."""
    recurring = {
        **CONFIG,
        "maintenance": [{"name": "nightly", "checks": ["shop"], "every": "daily 20:00-21:00 UTC"}],
    }
    config = config_from_mapping(recurring, "collector.yaml")
    shop = report(store, scope_of(config, "*", T0 + 86_400), 86_400, T0 + 86_400)["checks"]
    assert next(c for c in shop if c["check"] == "shop")["availability"] == 93.4783
    silence = Window("deploy", ("shop",), (), at(20).timestamp(), at(21).timestamp(), id="s1")
    bare = config_from_mapping({**CONFIG, "maintenance": []}, "collector.yaml")
    silenced = report(store, scope_of(bare, "*", T0 + 86_400, [silence]), 86_400, T0 + 86_400)["checks"]
    assert next(c for c in silenced if c["check"] == "shop")["excluded_s"] == 3600.0


def test_recurring_occurrences_over_a_range() -> None:
    """Each occurrence overlapping the range, crossing midnight in its own zone."""
    window = parse_window(
        {"name": "w", "checks": ["*"], "every": "mon-fri 22:30-01:00 Europe/Rome"},
        "collector.yaml",
        "maintenance[0]",
    )
    monday = datetime(2026, 11, 30, tzinfo=UTC).timestamp()  # a Monday
    spans = window.spans_between(monday, monday + 7 * 86_400)
    assert [round(b - a) for a, b in spans] == [9000] * 5
    assert datetime.fromtimestamp(spans[0][0], UTC).strftime("%a %H:%M") == "Mon 21:30"  # 22:30 in Rome
    one_shot = parse_window(
        {"name": "o", "checks": ["*"], "start": "2026-12-01T02:00:00Z", "end": "2026-12-01T03:00:00Z"},
        "collector.yaml",
        "maintenance[0]",
    )
    assert one_shot.spans_between(monday, monday + 86_400) == []
    assert len(one_shot.spans_between(monday, monday + 2 * 86_400)) == 1
