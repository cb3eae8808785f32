"""What the SQL endpoint lets a caller run, decided by the engine's own parser.

On chDB every query runs inside the collector's process, so a table function (`file()`,
`url()`, `s3()`...) or the scalar `file()` reads the host's files and reaches its network;
`readonly` alone does not stop that (`readonly = 1` still lets the scalar `file()` read any
file, and `readonly = 2` lets a query lift its own limits). The rule, in one place:

- exactly one `SELECT` (with `WITH`, `UNION`, `INTERSECT`, `EXCEPT`, joins and subqueries), or
  an `EXPLAIN` (plan, pipeline, estimate, AST, syntax, query tree) of one;
- reading only the project's own tables (those the migrations create, unqualified or qualified
  with the store's database) and the query's own `WITH` names; no `system.*`, no other database;
- no table function at all, and none of `DENIED_FUNCTIONS` (host files, server settings and
  identity, dictionaries, AI and model calls, introspection);
- no `SETTINGS` clause (the safe list of settings a caller may pass is empty: the limits below
  are the only ones), no `FORMAT`, no `INTO OUTFILE`;
- run with `readonly = 1` and the per-query `SqlLimits`, never session-wide, so nothing a caller
  sends changes what the next query may do.

`parse` asks the engine with the caller's text as a bound parameter (`parseQueryToJSON`, so the
text is never spliced into another statement and never executed); `check` walks the JSON AST
and is pure (an AST in, a refusal out); `ReadOnlySql` runs what passes on its own pool.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from collector.errors import StoreError
from collector.store.migrations import MIGRATIONS, migrations_table_sql

MAX_SQL_CHARS = 100_000
PARSE_SQL = "SELECT parseQueryToJSON({sql:String})"
SELECT_KINDS = frozenset(
    {"SelectWithUnionQuery", "SelectQuery", "SelectIntersectExceptQuery", "TablesInSelectQuery"}
)
EXPLAIN_KINDS = frozenset(
    {"EXPLAIN", "EXPLAIN PIPELINE", "EXPLAIN ESTIMATE", "EXPLAIN AST", "EXPLAIN SYNTAX", "EXPLAIN QUERY TREE"}
)
# `x IN name` reads the table `name`: its right-hand identifier is a table reference.
IN_FUNCTIONS = frozenset(
    f"{scope}{kind}"
    for scope in ("", "global")
    for kind in ("in", "notin", "nullin", "notnullin", "inignoreset", "notinignoreset")
)
# Lower-case names. Host files and processes (file, catboostEvaluate), server settings, identity
# and state (getSetting, getMacro, filesystem*, hostName, showCertificate...), writes to the
# server's log or Keeper (logTrace, generateSerialID), other tables and dictionaries by name
# (joinGet, hasColumnInTable, dict*, region*), LLM calls (ai*), stored models and introspection.
DENIED_FUNCTIONS = frozenset(
    name.lower()
    for name in (
        "file",
        "catboostEvaluate",
        "modelEvaluate",
        "evalMLMethod",
        "naiveBayesClassifier",
        "naiveBayesClassifierWithProb",
        "naiveBayesClassifierWithAllProbs",
        "getSetting",
        "getSettingOrDefault",
        "getServerSetting",
        "getMergeTreeSetting",
        "getMacro",
        "globalVariable",
        "filesystemAvailable",
        "filesystemCapacity",
        "filesystemFree",
        "filesystemUnreserved",
        "hostName",
        "FQDN",
        "fullHostName",
        "getServerPort",
        "tcpPort",
        "getOSKernelVersion",
        "buildId",
        "serverUUID",
        "uptime",
        "showCertificate",
        "getClientHTTPHeader",
        "currentRequestURL",
        "currentProfiles",
        "enabledProfiles",
        "defaultProfiles",
        "currentRoles",
        "enabledRoles",
        "defaultRoles",
        "logTrace",
        "generateSerialID",
        "zookeeperSessionUptime",
        "transactionID",
        "transactionLatestSnapshot",
        "transactionOldestSnapshot",
        "joinGet",
        "joinGetOrNull",
        "hasColumnInTable",
        "addressToLine",
        "addressToLineWithInlines",
        "addressToSymbol",
        "demangle",
        "tid",
        "isMergeTreePartCoveredBy",
        "mergeTreePartInfo",
        "getMaxTableNameLengthForDatabase",
        "pgTableIsVisible",
        "pgGetUserById",
        "currentHandler",
    )
)
DENIED_FUNCTION_PREFIXES = ("dictget", "dicthas", "dictisin", "region", "ai", "__")

_CREATED = re.compile(r"CREATE\s+(?:TABLE|VIEW|MATERIALIZED\s+VIEW)\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.I)
_DROPPED = re.compile(r"DROP\s+(?:TABLE|VIEW)\s+IF\s+EXISTS\s+(\w+)", re.I)
_RENAMED = re.compile(r"RENAME\s+TABLE\s+IF\s+EXISTS\s+(\w+)\s+TO\s+(\w+)", re.I)


class RejectedQuery(ValueError):
    """The SQL is not one read-only SELECT over the project's tables; the message says why."""


class SqlBusy(Exception):
    """Every SQL worker is busy and the queue is full."""


@dataclass(frozen=True)
class SqlLimits:
    """Per-query limits of the SQL endpoint, and the size of its own worker pool."""

    rows: int = 100_000
    bytes: int = 16 << 20
    memory: int = 512 << 20
    threads: int = 2
    seconds: int = 15
    workers: int = 2
    queue: int = 8

    def settings(self) -> dict[str, Any]:
        """Sent with every query (a SETTINGS clause on chDB, URL parameters on a server)."""
        return {
            "readonly": 1,
            "max_result_rows": self.rows,
            "max_result_bytes": self.bytes,
            "result_overflow_mode": "throw",
            "max_memory_usage": self.memory,
            "max_threads": self.threads,
            "max_execution_time": self.seconds,
            "timeout_overflow_mode": "throw",
        }


def project_tables() -> frozenset[str]:
    """Every table and view the migrations leave (created, not dropped or renamed away, in
    migration order): what the SQL endpoint may read."""
    tables: set[str] = set(_CREATED.findall(migrations_table_sql("")))
    for migration in sorted(MIGRATIONS, key=lambda m: m.version):
        for statement in migration.statements:
            tables.update(_CREATED.findall(statement))
            tables.difference_update(_DROPPED.findall(statement))
            for old, new in _RENAMED.findall(statement):
                tables.discard(old)
                tables.add(new)
    return frozenset(tables)


def parse(store: Any, sql: str, limits: SqlLimits) -> dict[str, Any]:
    """The engine's AST of `sql` (one statement). Runs on the store's thread."""
    if len(sql) > MAX_SQL_CHARS:
        raise RejectedQuery(f"the SQL is {len(sql)} characters long; at most {MAX_SQL_CHARS}")
    try:
        _, rows = store.query(PARSE_SQL, {"sql": sql}, limits.settings())
    except StoreError as exc:
        message = engine_message(str(exc))
        if "UNKNOWN_FUNCTION" in message and "parseQueryToJSON" in message:
            raise StoreError("the SQL endpoint needs ClickHouse 26.8 or later (parseQueryToJSON)") from exc
        raise RejectedQuery(f"cannot parse the SQL: {message}") from exc
    ast: dict[str, Any] = json.loads(rows[0][0])
    return ast


def engine_message(text: str) -> str:
    """The engine's own words, without the store URL or the echo of parseQueryToJSON's argument."""
    text = text[text.find("Code:") :] if "Code:" in text else text
    return re.sub(r":? In scope SELECT parseQueryToJSON\(.*\)\.", "", text, flags=re.S).strip()


def check(ast: Mapping[str, Any], tables: Collection[str], database: str) -> None:
    """Raise RejectedQuery unless `ast` is one SELECT (or EXPLAIN of one) the endpoint allows."""
    _check_output(ast)
    kind = ast.get("type")
    if kind == "ExplainQuery":
        if ast.get("kind") not in EXPLAIN_KINDS:
            raise RejectedQuery(f"{ast.get('kind')} is not allowed: only EXPLAIN of one read-only SELECT")
        # Its own `settings` are EXPLAIN's options (indexes = 1), checked by the engine.
        ast = ast.get("query") or {}
        _check_output(ast)
        kind = ast.get("type")
    if kind != "SelectWithUnionQuery":
        raise RejectedQuery(f"{_statement(kind)} is not allowed: the SQL endpoint is read-only, one SELECT")
    names = {str(n["name"]) for n in _nodes(ast) if n.get("type") == "WithElement" and "name" in n}
    for node in _nodes(ast):
        _check_node(node, frozenset(tables) | names, database)


def statement_to_run(sql: str, ast: Mapping[str, Any]) -> str:
    """The text to execute for a checked `sql`. The engine does not apply the result limits to a
    SELECT that reads no table (`SELECT arrayJoin(range(50000000))` answered in full), so such a
    query runs as a subquery, where they hold; the newlines keep a trailing comment inside."""
    selects = (ast.get("list_of_selects") or {}).get("children") or []
    if ast.get("type") == "SelectWithUnionQuery" and any(
        s.get("type") != "SelectQuery" or "tables" not in s for s in selects
    ):
        return f"SELECT * FROM (\n{sql}\n)"
    return sql


def _statement(kind: Any) -> str:
    """KillQueryQuery -> KILL QUERY: the statement as the caller wrote it."""
    words = re.findall(r"[A-Z][a-z]*", re.sub(r"Query$", "", str(kind)))
    return " ".join(words).upper() or "this statement"


def _check_output(node: Mapping[str, Any]) -> None:
    if "out_file" in node:
        raise RejectedQuery("INTO OUTFILE is not allowed")
    if "format_ast" in node:
        raise RejectedQuery("a FORMAT clause is not allowed: choose the format with the API")


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every AST node below (and including) `node`, depth first, without recursion."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if "type" in item:
                yield item
            stack.extend(item.values())


def _check_node(node: dict[str, Any], readable: frozenset[str], database: str) -> None:
    kind = node["type"]
    if kind == "SetQuery":
        raise RejectedQuery("a SETTINGS clause is not allowed: the endpoint's limits are fixed")
    if kind.endswith("Query") and kind not in SELECT_KINDS:
        raise RejectedQuery(f"{_statement(kind)} is not allowed inside a SELECT")
    if kind == "TableExpression" and "table_function" in node:
        name = node["table_function"].get("name", "?")
        raise RejectedQuery(f"table function {name}() is not allowed: read the project's tables")
    if kind == "TableIdentifier":
        _check_table(node, readable, database)
    if kind == "Function":
        _check_function(str(node.get("name", "")))
        _check_in(node, readable, database)
    if "func_name" in node:  # SELECT * APPLY(file): a function named by its transformer
        _check_function(str(node["func_name"]))


def _check_function(name: str) -> None:
    if name.lower() in DENIED_FUNCTIONS or name.lower().startswith(DENIED_FUNCTION_PREFIXES):
        raise RejectedQuery(f"function {name}() is not allowed")


def _check_in(node: dict[str, Any], readable: frozenset[str], database: str) -> None:
    if str(node.get("name", "")).lower() in IN_FUNCTIONS:
        arguments = (node.get("arguments") or {}).get("children") or []
        if len(arguments) == 2 and arguments[1].get("type") == "Identifier":
            _check_table(arguments[1], readable, database)


def _check_table(node: Mapping[str, Any], readable: frozenset[str], database: str) -> None:
    parts = node.get("name_parts") or [node.get("name", "")]
    if len(parts) == 2 and parts[0] == database:
        parts = parts[1:]
    if len(parts) != 1 or parts[0] not in readable:
        shown = ".".join(str(p) for p in node.get("name_parts") or [node.get("name", "")])
        raise RejectedQuery(f"table {shown} is not allowed: only {', '.join(sorted(readable))}")


class ReadOnlySql:
    """The SQL endpoint's own bounded pool: `limits.workers` clients on the store, each on its
    own thread, and at most `limits.queue` requests waiting; beyond that `run` refuses at once,
    so heavy queries never hold up the API's other endpoints (they read through other clients)."""

    def __init__(self, url: str, limits: SqlLimits | None = None) -> None:
        from collector.store.clickhouse import Store

        self.limits = limits or SqlLimits()
        self.tables = project_tables()
        self._stores = [Store(url) for _ in range(self.limits.workers)]
        self._free: asyncio.Queue[Store] = asyncio.Queue()
        for store in self._stores:
            self._free.put_nowait(store)
        self._admitted = 0
        self._database: str | None = None

    @property
    def in_flight(self) -> int:
        """Requests running or waiting for a worker."""
        return self._admitted

    async def run(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        if self._admitted >= self.limits.workers + self.limits.queue:
            raise SqlBusy(
                f"the SQL endpoint is busy ({self.limits.workers} queries running,"
                f" {self.limits.queue} waiting): retry later"
            )
        self._admitted += 1
        try:
            store = await self._free.get()
        except BaseException:
            self._admitted -= 1
            raise
        work = asyncio.ensure_future(store.run(self._execute, store, sql))
        # A cancelled request leaves its query running: the worker is free only when it ends.
        work.add_done_callback(lambda _: self._release(store))
        return await asyncio.shield(work)

    def _release(self, store: Any) -> None:
        self._admitted -= 1
        self._free.put_nowait(store)

    def _execute(self, store: Any, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        try:
            settings = self.limits.settings()
            ast = parse(store, sql, self.limits)
            if self._database is None:
                self._database = str(store.query("SELECT currentDatabase()", None, settings)[1][0][0])
            check(ast, self.tables, self._database)
            columns, rows = store.query(statement_to_run(sql, ast), None, settings)
        except RejectedQuery as exc:
            if exc.__cause__ is not None:  # the engine refused to parse it
                store.close()
            raise
        except Exception as exc:
            # A chDB handle whose query failed can hand the rest of its output to the next query
            # (seen: a memory limit, then a garbled answer): the worker starts a fresh handle.
            store.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"the query failed: {exc!r}") from exc
        return columns, rows

    async def aclose(self) -> None:
        for store in self._stores:
            await store.aclose()
