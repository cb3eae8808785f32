"""Probe registry: one module per probe type, one key per module."""

from __future__ import annotations

from probe_agent.probes import http
from probe_agent.probes.base import ProbeFn

PROBE_TYPES: dict[str, ProbeFn] = {
    "http": http.probe,
}
