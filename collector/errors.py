"""Errors of the collector package.

CollectorError
├── ConfigError      bad configuration: names the file, the key and the reason (exit 2)
├── UsageError       bad command line (exit 2)
└── StoreError       ClickHouse refused or is unreachable (exit 1 / UNAVAILABLE on the wire)
"""

from __future__ import annotations


class CollectorError(Exception):
    """Base of every error the collector raises on purpose."""


class ConfigError(CollectorError):
    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file = file
        self.key = key
        self.reason = reason


class UsageError(CollectorError):
    """A command line the collector cannot act on."""


class StoreError(CollectorError):
    """The store failed; the operation may be retried."""
