"""Versioned schema migrations, applied in order at collector start.

Engine clauses and ON CLUSTER are templated so that a replicated cluster is a config change:
with `store.cluster` set, {on_cluster} becomes `ON CLUSTER <name>` and {merge_tree} /
{replacing_merge_tree} / {aggregating_merge_tree} become their Replicated* forms.

Version ranges by owner, so parallel work never collides: 1-9 results and agents,
10-19 verdicts and events, 20-29 API and operations, 30-39 ingest.

A migration of several statements is resumed, after a crash, at the statement it stopped at
(each one done is recorded in `schema_migration_steps`), so no state between two statements is
ever a dead end; the one that was running may run twice, so each must survive that: IF EXISTS /
IF NOT EXISTS, and inserts only into ReplacingMergeTree tables, where a repeated row is one row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "probe_results",
        (
            """
CREATE TABLE IF NOT EXISTS probe_results {on_cluster} (
    started_at      DateTime64(3, 'UTC'),
    received_at     DateTime64(3, 'UTC'),
    check_id        LowCardinality(String),
    probe           LowCardinality(String),
    target          String,
    agent_id        LowCardinality(String),
    region          LowCardinality(String),
    seq             UInt64,
    outcome         LowCardinality(String),
    failure_class   LowCardinality(String),
    error           String,
    failure_host    LowCardinality(String),
    dns_ms          Float32,
    connect_ms      Float32,
    tls_ms          Float32,
    ttfb_ms         Float32,
    transfer_ms     Float32,
    total_ms        Float32,
    http_status     UInt16,
    http_version    LowCardinality(String),
    body_bytes      UInt64,
    remote_addr     String,
    redirects       UInt8,
    final_url       String,
    tls_version     LowCardinality(String),
    tls_cipher      LowCardinality(String),
    tls_verified    UInt8,
    cert_subject    String,
    cert_issuer     String,
    cert_sans       Array(String),
    cert_fingerprint String,
    cert_not_after  Nullable(DateTime64(3, 'UTC')),
    tls_days_left   Nullable(Float32),
    page_resources_total  UInt32,
    page_resources_failed UInt32,
    page_failed_hosts     Array(String),
    page_failed_classes   Array(LowCardinality(String)),
    raw             String CODEC(ZSTD(3))
)
ENGINE = {merge_tree}
PARTITION BY toDate(started_at)
ORDER BY (check_id, region, started_at, agent_id)
TTL toDateTime(started_at) + INTERVAL {ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 10000
""",
        ),
    ),
    Migration(
        2,
        "agents",
        (
            """
CREATE TABLE IF NOT EXISTS agents {on_cluster} (
    agent_id        LowCardinality(String),
    region          LowCardinality(String),
    version         String,
    capabilities    Array(String),
    last_seen       DateTime64(3, 'UTC'),
    spool_depth     UInt64,
    dropped_results UInt64,
    last_seq        UInt64
)
ENGINE = {replacing_merge_tree}(last_seen)
ORDER BY agent_id
""",
        ),
    ),
    # An agent is (region, agent id): two regions' `it-1` are two rows, never one.
    Migration(
        5,
        "agents_by_region",
        (
            """
CREATE TABLE IF NOT EXISTS agents_by_region {on_cluster} AS agents
ENGINE = {replacing_merge_tree}(last_seen)
ORDER BY (region, agent_id)
""",
            "INSERT INTO agents_by_region SELECT * FROM agents",
            "DROP TABLE IF EXISTS agents {on_cluster} SYNC",
            "RENAME TABLE IF EXISTS agents_by_region TO agents {on_cluster}",
        ),
    ),
    Migration(
        3,
        "probe_results_1m",
        (
            """
CREATE TABLE IF NOT EXISTS probe_results_1m {on_cluster} (
    minute          DateTime('UTC'),
    check_id        LowCardinality(String),
    region          LowCardinality(String),
    results         AggregateFunction(count),
    failures        AggregateFunction(countIf, UInt8),
    partials        AggregateFunction(countIf, UInt8),
    total_ms        AggregateFunction(quantiles(0.5, 0.95, 0.99), Float32),
    ttfb_ms         AggregateFunction(quantiles(0.5, 0.95, 0.99), Float32)
)
ENGINE = {aggregating_merge_tree}
PARTITION BY toDate(minute)
ORDER BY (check_id, region, minute)
TTL minute + INTERVAL {ttl_days} DAY
""",
            """
CREATE MATERIALIZED VIEW IF NOT EXISTS probe_results_1m_mv {on_cluster} TO probe_results_1m AS
SELECT
    toStartOfMinute(started_at) AS minute,
    check_id,
    region,
    countState() AS results,
    countIfState(outcome = 'failed') AS failures,
    countIfState(outcome = 'partial') AS partials,
    quantilesState(0.5, 0.95, 0.99)(total_ms) AS total_ms,
    quantilesState(0.5, 0.95, 0.99)(ttfb_ms) AS ttfb_ms
FROM probe_results
GROUP BY minute, check_id, region
""",
        ),
    ),
    # Which 6-minute slots of each day held a result, per check and region (and region '': the
    # check in any region): 240 bits of a UInt256, OR-ed together (exact under replays and across
    # batches, 32 bytes a day), so a report over 90 days reads a row per check, region and day.
    # Kept a day longer than results: the oldest day of a report over the whole TTL is whole.
    Migration(
        4,
        "probe_results_1d",
        (
            """
CREATE TABLE IF NOT EXISTS probe_results_1d {on_cluster} (
    day             Date,
    check_id        LowCardinality(String),
    region          LowCardinality(String),
    slots           SimpleAggregateFunction(groupBitOr, UInt256),
    results         SimpleAggregateFunction(sum, UInt64)
)
ENGINE = {aggregating_merge_tree}
PARTITION BY day
ORDER BY (check_id, region, day)
TTL day + INTERVAL {ttl_days} DAY + INTERVAL 1 DAY
""",
            """
CREATE MATERIALIZED VIEW IF NOT EXISTS probe_results_1d_mv {on_cluster} TO probe_results_1d AS
SELECT
    toDate(started_at) AS day,
    check_id,
    arrayJoin([region, '']) AS region,
    groupBitOr(bitShiftLeft(toUInt256(1), intDiv(toHour(started_at) * 60 + toMinute(started_at), 6)))
        AS slots,
    count() AS results
FROM probe_results
GROUP BY day, check_id, region
""",
            # A store from before this migration: its minute rollup gives the slots of the past
            # (OR-ed, so a rerun after a crash changes nothing but `results`).
            """
INSERT INTO probe_results_1d
SELECT toDate(minute) AS day, check_id, arrayJoin([region, '']) AS region,
       groupBitOr(bitShiftLeft(toUInt256(1), intDiv(toHour(minute) * 60 + toMinute(minute), 6))),
       countMerge(results)
FROM probe_results_1m
GROUP BY day, check_id, region
SETTINGS max_partitions_per_insert_block = 1000
""",
        ),
    ),
    # The slot rollup a week to a row: the report over 90 days of 10,000 checks x 20 regions
    # reads 2.9 M rows instead of 18.9 M (the GROUP BY per check and region was most of its
    # time). `week` is the first day of a 7-day period counted from 1970-01-01 (a Thursday), and
    # slots<k> its day k: the same 240 bits a day, OR-ed, exact under replays and across parts.
    # Kept a week longer than results: the oldest day of a report over the whole TTL is whole.
    # The daily rows move over (OR-ed, so a rerun after a crash changes nothing but `results`)
    # and the daily table and its view go.
    Migration(
        6,
        "probe_results_1w",
        (
            """
CREATE TABLE IF NOT EXISTS probe_results_1w {on_cluster} (
    week            Date,
    check_id        LowCardinality(String),
    region          LowCardinality(String),
    slots0          SimpleAggregateFunction(groupBitOr, UInt256),
    slots1          SimpleAggregateFunction(groupBitOr, UInt256),
    slots2          SimpleAggregateFunction(groupBitOr, UInt256),
    slots3          SimpleAggregateFunction(groupBitOr, UInt256),
    slots4          SimpleAggregateFunction(groupBitOr, UInt256),
    slots5          SimpleAggregateFunction(groupBitOr, UInt256),
    slots6          SimpleAggregateFunction(groupBitOr, UInt256),
    results         SimpleAggregateFunction(sum, UInt64)
)
ENGINE = {aggregating_merge_tree}
PARTITION BY week
ORDER BY (check_id, region, week)
TTL week + INTERVAL {ttl_days} DAY + INTERVAL 7 DAY
""",
            """
CREATE MATERIALIZED VIEW IF NOT EXISTS probe_results_1w_mv {on_cluster} TO probe_results_1w AS
WITH bitShiftLeft(toUInt256(1), intDiv(toHour(started_at) * 60 + toMinute(started_at), 6)) AS bit
SELECT
    toDate(started_at) - toUInt16(toDate(started_at)) % 7 AS week,
    check_id,
    arrayJoin([region, '']) AS region,
    groupBitOrIf(bit, toUInt16(toDate(started_at)) % 7 = 0) AS slots0,
    groupBitOrIf(bit, toUInt16(toDate(started_at)) % 7 = 1) AS slots1,
    groupBitOrIf(bit, toUInt16(toDate(started_at)) % 7 = 2) AS slots2,
    groupBitOrIf(bit, toUInt16(toDate(started_at)) % 7 = 3) AS slots3,
    groupBitOrIf(bit, toUInt16(toDate(started_at)) % 7 = 4) AS slots4,
    groupBitOrIf(bit, toUInt16(toDate(started_at)) % 7 = 5) AS slots5,
    groupBitOrIf(bit, toUInt16(toDate(started_at)) % 7 = 6) AS slots6,
    count() AS results
FROM probe_results
GROUP BY week, check_id, region
""",
            """
INSERT INTO probe_results_1w
SELECT day - toUInt16(day) % 7 AS week, check_id, region,
       groupBitOrIf(slots, toUInt16(day) % 7 = 0),
       groupBitOrIf(slots, toUInt16(day) % 7 = 1),
       groupBitOrIf(slots, toUInt16(day) % 7 = 2),
       groupBitOrIf(slots, toUInt16(day) % 7 = 3),
       groupBitOrIf(slots, toUInt16(day) % 7 = 4),
       groupBitOrIf(slots, toUInt16(day) % 7 = 5),
       groupBitOrIf(slots, toUInt16(day) % 7 = 6),
       sum(results)
FROM probe_results_1d
GROUP BY week, check_id, region
SETTINGS max_partitions_per_insert_block = 1000
""",
            "DROP VIEW IF EXISTS probe_results_1d_mv {on_cluster} SYNC",
            "DROP TABLE IF EXISTS probe_results_1d {on_cluster} SYNC",
        ),
    ),
    # 10-19: verdicts and events. Every event version is a row; (event_id, version) is unique,
    # so re-inserting a version after a crash collapses instead of duplicating.
    Migration(
        10,
        "outage_events",
        (
            """
CREATE TABLE IF NOT EXISTS outage_events {on_cluster} (
    event_id    String,
    version     UInt32,
    kind        LowCardinality(String),
    check_id    String,
    agent_id    String,
    status      LowCardinality(String),
    scope       LowCardinality(String),
    regions     Array(String),
    cause_class LowCardinality(String),
    cause_host  String,
    cause_error String,
    opened_at   DateTime64(3, 'UTC'),
    updated_at  DateTime64(3, 'UTC'),
    closed_at   Nullable(DateTime64(3, 'UTC')),
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {replacing_merge_tree}
ORDER BY (event_id, version)
""",
            """
CREATE VIEW IF NOT EXISTS outage_events_latest {on_cluster} AS
SELECT * FROM outage_events FINAL
ORDER BY event_id, version DESC
LIMIT 1 BY event_id
""",
        ),
    ),
    # What each webhook (sink = a hash of its URL, never the URL: it may hold a secret) was sent.
    Migration(
        11,
        "event_notifications",
        (
            """
CREATE TABLE IF NOT EXISTS event_notifications {on_cluster} (
    sink        String,
    event_id    String,
    version     UInt32,
    delivered   UInt8,
    attempts    UInt32,
    error       String,
    sent_at     DateTime64(3, 'UTC')
)
ENGINE = {replacing_merge_tree}
ORDER BY (sink, event_id, version)
""",
        ),
    ),
    # Path traces the agents of an event's regions ran when it opened or widened: one row per hop
    # (hop 0 and an error when the agent could not trace).
    Migration(
        12,
        "path_traces",
        (
            """
CREATE TABLE IF NOT EXISTS path_traces {on_cluster} (
    event_id    String,
    check_id    LowCardinality(String),
    agent_id    LowCardinality(String),
    region      LowCardinality(String),
    host        String,
    address     String,
    started_at  DateTime64(3, 'UTC'),
    method      LowCardinality(String),
    reached     UInt8,
    error       String,
    hop         UInt8,
    hop_address String,
    rtt_ms      Array(Float32),
    sent        UInt8,
    lost        UInt8,
    received_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {merge_tree}
ORDER BY (event_id, agent_id, started_at, hop)
TTL toDateTime(started_at) + INTERVAL {ttl_days} DAY
""",
        ),
    ),
    # Every version carries its event's peak (what it ever affected) and the regions recovering
    # as it was made; rows from before read as their own state (empty peak) and no recovery.
    Migration(
        13,
        "outage_events_peak",
        (
            """
ALTER TABLE outage_events {on_cluster}
    ADD COLUMN IF NOT EXISTS peak_status LowCardinality(String) DEFAULT '' AFTER closed_at,
    ADD COLUMN IF NOT EXISTS peak_scope LowCardinality(String) DEFAULT '' AFTER peak_status,
    ADD COLUMN IF NOT EXISTS peak_regions Array(String) DEFAULT [] AFTER peak_scope,
    ADD COLUMN IF NOT EXISTS recovering_regions Array(String) DEFAULT [] AFTER peak_regions
""",
            """
CREATE OR REPLACE VIEW outage_events_latest {on_cluster} AS
SELECT * FROM outage_events FINAL
ORDER BY event_id, version DESC
LIMIT 1 BY event_id
""",
        ),
    ),
    # 20-29: API and operations. Silences made through /api/v1/silences; a delete is a newer row
    # with deleted = 1, so the latest row per id (FINAL) is the silence's state.
    Migration(
        24,
        "silences",
        (
            """
CREATE TABLE IF NOT EXISTS silences {on_cluster} (
    silence_id  String,
    name        String,
    checks      Array(String),
    regions     Array(String),
    starts_at   DateTime64(3, 'UTC'),
    ends_at     DateTime64(3, 'UTC'),
    comment     String,
    created_by  String,
    deleted     UInt8,
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = {replacing_merge_tree}(updated_at)
ORDER BY silence_id
""",
        ),
    ),
]

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations {on_cluster} (
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {replacing_merge_tree}
ORDER BY version
"""

_STEPS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migration_steps {on_cluster} (
    version    UInt32,
    step       UInt32,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {replacing_merge_tree}
ORDER BY (version, step)
"""


_ENGINE = re.compile(r"\{(merge_tree|replacing_merge_tree|aggregating_merge_tree)\}(?:\(([^)]*)\))?")
_ENGINE_NAMES = {
    "merge_tree": "MergeTree",
    "replacing_merge_tree": "ReplacingMergeTree",
    "aggregating_merge_tree": "AggregatingMergeTree",
}
_REPLICA_ARGS = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"


def render(sql: str, cluster: str, ttl_days: int) -> str:
    """Fill the templates of one migration statement."""

    def engine(match: re.Match[str]) -> str:
        name, args = _ENGINE_NAMES[match.group(1)], match.group(2)
        if cluster:
            return f"Replicated{name}({', '.join(filter(None, [_REPLICA_ARGS, args]))})"
        return f"{name}({args})" if args else name

    text = _ENGINE.sub(engine, sql)
    text = text.replace("{on_cluster}", f"ON CLUSTER {cluster}" if cluster else "")
    return text.replace("{ttl_days}", str(int(ttl_days)))


def migrations_table_sql(cluster: str) -> str:
    return render(_MIGRATIONS_TABLE, cluster, 0)


def migration_steps_table_sql(cluster: str) -> str:
    return render(_STEPS_TABLE, cluster, 0)
