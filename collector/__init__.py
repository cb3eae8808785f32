"""probenet collector: ingests agent results into ClickHouse and decides outages."""

__version__ = "0.1.0"
