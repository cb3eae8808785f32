"""ClickHouse storage: connection, migrations and row conversion."""

from collector.store.clickhouse import Store

__all__ = ["Store"]
