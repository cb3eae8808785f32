"""An agent that may open no ICMP socket says so once at start, never in every result."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from probe_agent.agent import Agent
from probe_agent.config import check_from_mapping, config_from_mapping
from probe_agent.probes import icmp
from probenet.v1.stream_pb2 import CheckConfig


@pytest.fixture
def icmp_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(icmp._kinds, socket.AF_INET, "")


def _config(tmp_path: Path, checks: list[dict[str, object]]) -> object:
    return config_from_mapping(
        {
            "agent_id": "a",
            "region": "r",
            "insecure": True,
            "spool": {"dir": str(tmp_path / "spool")},
            "checks": checks,
        },
        "agent.yaml",
    )


def test_a_local_icmp_check_without_permission_stops_the_agent_at_start(
    tmp_path: Path, icmp_denied: None
) -> None:
    config = _config(tmp_path, [{"id": "ping", "probe": "icmp", "target": "127.0.0.1"}])
    with pytest.raises(icmp.IcmpNotPermitted, match=r"ping_group_range .* CAP_NET_RAW"):
        Agent(config)  # type: ignore[arg-type]


def test_pushed_icmp_checks_are_left_out_and_logged(
    tmp_path: Path, icmp_denied: None, caplog: pytest.LogCaptureFixture
) -> None:
    agent = Agent(_config(tmp_path, []))  # type: ignore[arg-type]
    pushed = [
        check_from_mapping({"id": "ping", "probe": "icmp", "target": "127.0.0.1"}, "push", "c0"),
        check_from_mapping({"id": "web", "probe": "tcp", "target": "127.0.0.1:1"}, "push", "c1"),
    ]

    async def push() -> list[str]:
        agent._apply_central_config(CheckConfig(version="v2", checks=pushed))
        scheduled = agent.scheduler.check_ids
        await agent.scheduler.stop()
        return scheduled

    try:
        capabilities = agent.exporter._settings.capabilities
        assert "icmp" not in capabilities and "tcp" in capabilities
        with caplog.at_level(logging.ERROR):
            assert asyncio.run(push()) == ["web"]
        assert "not running icmp checks ping" in caplog.text
    finally:
        agent.spool.close()
