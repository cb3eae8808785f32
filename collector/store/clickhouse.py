"""The store: one clickhouse-connect client, embedded (chdb://dir) or a server (http(s)://).

clickhouse-connect is synchronous and an embedded chDB directory belongs to one process, so
every call runs on one dedicated worker thread; async callers use `Store.run`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from collector.errors import StoreError
from collector.store.migrations import MIGRATIONS, migration_steps_table_sql, migrations_table_sql, render

log = logging.getLogger(__name__)
T = TypeVar("T")


class Store:
    def __init__(self, url: str, cluster: str = "", ttl_days: int = 90) -> None:
        self.url = url
        self.cluster = cluster
        self.ttl_days = ttl_days
        self.embedded = url.startswith("chdb://")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._client: Any = None
        self._native_conn: Any = None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    @property
    def display_url(self) -> str:
        """The URL without credentials, for logs."""
        if "@" in self.url:
            scheme, _, rest = self.url.partition("://")
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return self.url

    def _connect(self) -> Any:
        if self._client is None:
            import clickhouse_connect

            try:
                self._client = clickhouse_connect.get_client(dsn=self.url)
            except Exception as exc:
                raise StoreError(f"cannot open store {self.display_url}: {exc}") from exc
        return self._client

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- synchronous API (runs on the store thread when called through `run`) ---

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        try:
            return self._connect().command(sql, parameters=parameters)
        except StoreError:
            raise
        except Exception as exc:
            self._reset_on_failure()
            raise StoreError(f"{self.display_url}: {exc}") from exc

    def query(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        column_formats: dict[str, str] | None = None,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a SELECT; pass column_formats={'raw': 'bytes'} to read serialized results back."""
        try:
            result = self._connect().query(
                sql, parameters=parameters, settings=settings, column_formats=column_formats
            )
        except StoreError:
            raise
        except Exception as exc:
            self._reset_on_failure()
            raise StoreError(f"{self.display_url}: {exc}") from exc
        return list(result.column_names), [tuple(row) for row in result.result_rows]

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        settings: dict[str, Any] | None = None,
    ) -> None:
        try:
            self._connect().insert(table, rows, column_names=list(columns), settings=settings)
        except StoreError:
            raise
        except Exception as exc:
            self._reset_on_failure()
            raise StoreError(f"insert into {table} failed: {exc}") from exc

    def insert_results_protobuf(self, framed: bytes, settings: dict[str, Any] | None = None) -> None:
        """Embedded only: chDB decodes framed probe results (rows.frame_rows) itself, in C++."""
        from collector.store.rows import INGEST_PROTO, protobuf_insert_sql

        try:
            conn = self._native()
            if self._scratch is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="probenet-ingest-")
                (Path(self._scratch.name) / "ingest.proto").write_text(INGEST_PROTO)
            scratch = Path(self._scratch.name)
            data = scratch / "batch.bin"
            data.write_bytes(framed)
            conn.query(
                protobuf_insert_sql("probe_results", str(data), str(scratch / "ingest.proto"), settings)
            )
            data.unlink()
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"insert into probe_results failed: {exc}") from exc

    def _native(self) -> Any:
        """A second connection to the embedded engine, for what clickhouse-connect cannot express."""
        self._connect()
        if self._native_conn is None:
            import chdb

            self._native_conn = chdb.connect(  # type: ignore[no-untyped-call]
                os.path.realpath(self.url.removeprefix("chdb://"))
            )
        return self._native_conn

    def _reset_on_failure(self) -> None:
        # A server client may be wedged after a network failure; chDB must keep its one session.
        if not self.embedded:
            self._client = None

    def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied now."""
        self.command(migrations_table_sql(self.cluster))
        self.command(migration_steps_table_sql(self.cluster))
        _, rows = self.query("SELECT version FROM schema_migrations FINAL")
        done = {int(r[0]) for r in rows}
        _, rows = self.query("SELECT version, step FROM schema_migration_steps FINAL")
        steps_done = {(int(v), int(s)) for v, s in rows}
        applied = []
        for migration in sorted(MIGRATIONS, key=lambda m: m.version):
            if migration.version in done:
                continue
            for step, statement in enumerate(migration.statements, 1):
                if (migration.version, step) in steps_done:
                    continue
                self.command(render(statement, self.cluster, self.ttl_days))
                if len(migration.statements) > 1:
                    self.insert("schema_migration_steps", [[migration.version, step]], ["version", "step"])
            self.insert("schema_migrations", [[migration.version, migration.name]], ["version", "name"])
            applied.append(migration.version)
            log.info("applied migration %d %s", migration.version, migration.name)
        return applied

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                log.debug("store close failed", exc_info=True)
            self._client = None
        if self._native_conn is not None:
            self._native_conn.close()
            self._native_conn = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    async def aclose(self) -> None:
        await self.run(self.close)
        self._executor.shutdown(wait=True)
