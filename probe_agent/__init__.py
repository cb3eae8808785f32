"""probenet probe agent: runs checks on a schedule and streams results to the collector."""

__version__ = "0.1.0"
