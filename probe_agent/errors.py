"""Errors of the agent package.

    AgentError
    ├── ConfigError      bad configuration: names the file, the key and the reason
    └── UsageError       bad command line (exit code 2)

A failing *target* is never an exception: probes return a ProbeResult with a failure class.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file = file
        self.key = key
        self.reason = reason


class UsageError(AgentError):
    """A command line the agent cannot act on."""
