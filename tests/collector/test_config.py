"""Collector config: defaults, path resolution, and every bad-config message (file, key, reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import load_config
from collector.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "insecure: true\nstore: {url: 'chdb://data', flush_interval: 250ms}\n")
    )
    assert config.store.url == f"chdb://{tmp_path / 'data'}"
    assert config.store.flush_interval == 0.25
    assert config.listen == "127.0.0.1:4317" and config.api.listen == "127.0.0.1:8080"
    tls = load_config(write(tmp_path, "tls: {ca: ca.pem, cert: c.pem, key: k.pem}\n")).tls
    assert tls.ca == str(tmp_path / "ca.pem")


def test_limits_default_and_override(tmp_path: Path) -> None:
    default = load_config(write(tmp_path, "insecure: true\n")).limits
    assert default.max_batch_results == 5000
    custom = load_config(write(tmp_path, "insecure: true\nlimits: {max_batch_results: 100, max_age_s: 60}\n"))
    assert (custom.limits.max_batch_results, custom.limits.max_age_s) == (100, 60.0)


def test_checks_are_filtered_per_region(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
insecure: true
checks:
  - {id: everywhere, probe: http, target: "https://a.test/"}
  - {id: only-it, probe: tls, target: "a.test:443", regions: [it], interval: 1m}
""",
        )
    )
    assert [c.id for c in config.checks_for_region("it")] == ["everywhere", "only-it"]
    assert [c.id for c in config.checks_for_region("fr")] == ["everywhere"]
    assert config.checks[1].interval.ToSeconds() == 60
    assert len(config.checks_version) == 16


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("insecure: true\nlisen: x\n", "lisen", "unknown key"),
        ("{}\n", "tls", "ca, cert and key are required"),
        ("insecure: true\nstore: {url: 'mysql://x'}\n", "store.url", "expected chdb:///dir or http(s)"),
        ("insecure: true\nstore: {batch_rows: many}\n", "store.batch_rows", "expected int"),
        ("insecure: true\nstore: {flush_interval: soon}\n", "store.flush_interval", "expected a duration"),
        ("insecure: true\nstore: {colour: red}\n", "store.colour", "unknown key"),
        (
            "insecure: true\nstore: {query_url: 'http://q@h/db'}\n",
            "store.query_url",
            "only for a server store",
        ),
        ("insecure: true\napi: []\n", "api", "expected a mapping"),
        (
            "insecure: true\nwebhooks: [{url: 'http://x', format: xml}]\n",
            "webhooks[0].format",
            "json or slack",
        ),
        ("insecure: true\nwebhooks: [{format: json}]\n", "webhooks[0].url", "is required"),
        ("insecure: true\nchecks: [{id: a, probe: ping, target: x}]\n", "checks[0].probe", "unknown probe"),
        (
            "insecure: true\nchecks: [{id: a, probe: http, target: x, verdict: {region_quorum: 2}}]\n",
            "checks[0].verdict.region_quorum",
            "must be in (0, 1]",
        ),
        (
            "insecure: true\nchecks: [{id: a, probe: http, target: x}, {id: a, probe: http, target: x}]\n",
            "checks[1].id",
            "duplicate",
        ),
        ("insecure: [\n", "-", "invalid YAML"),
        ("insecure: true\nlimits: {max_batch_results: 0}\n", "limits.max_batch_results", "must be positive"),
        (
            "insecure: true\nlimits: {max_message_bytes: 1000}\n",
            "limits.max_message_bytes",
            "at least 1048576",
        ),
        ("insecure: true\nlimits: {max_age: 5}\n", "limits.max_age", "unknown key"),
    ],
)
def test_bad_config_names_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.file, info.value.key) == (str(path), key)
    assert reason in info.value.reason


def test_serve_with_bad_config_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write(tmp_path, "insecure: true\nstore: {batch_rows: many}\n")
    exe = Path(sys.executable).parent / "probe-collector"
    out = subprocess.run(
        [str(exe), "serve", "--config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 2
    assert f"{path}: store.batch_rows: expected int" in out.stderr


FIRST_ACK = """
import asyncio, sys, grpc
from probenet.v1 import stream_pb2, stream_pb2_grpc

async def main():
    async with grpc.aio.insecure_channel(sys.argv[1]) as channel:
        call = stream_pb2_grpc.CollectorStub(channel).Stream()
        await call.write(stream_pb2.AgentMessage(hello=stream_pb2.Hello(agent_id="it-1", region="it")))
        reply = await asyncio.wait_for(call.read(), 20)
        print(reply.ack.max_batch_results)
        call.cancel()

asyncio.run(main())
"""


def test_configured_limits_reach_the_agents(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.e2e.procs import Collector, stopped_on_exit

    collector = Collector(tmp_path, extra={"limits": {"max_batch_results": 7}}).start()
    with stopped_on_exit(collector):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_ACK, collector.address],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert out.stdout.strip() == "7"
        assert collector.stop() == 0
