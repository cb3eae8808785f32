"""Delivery under faults, with real collector and agent processes. Every test ends the same way:
the agent drains its spool, then SQL through `probe-collector query` must show each of its
sequence numbers 1..N exactly once (N = the last number its spool handed out, none dropped)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest

from tests.e2e.procs import (
    BIN,
    Collector,
    Proc,
    free_port,
    refused_checks,
    spawn,
    spool_state,
    start_agent,
    stopped_on_exit,
    stored_seqs,
    wait_until,
)

pytestmark = pytest.mark.e2e


def _count(collector: Collector, agent_id: str) -> int:
    return stored_seqs(collector, agent_id)["n"]


def _drain_and_prove(workdir: Path, collector: Collector, agent: Proc, agent_id: str, region: str) -> int:
    """Stop the agent, let it drain its spool with no checks running, prove exactly-once with SQL."""
    agent.stop(signal.SIGTERM)
    drainer = start_agent(workdir, agent_id, region, collector.address, [])
    with stopped_on_exit(drainer):
        wait_until(lambda: spool_state(workdir, agent_id)[1] == 0, 60, f"{agent_id} spool drained")
        drainer.stop(signal.SIGTERM)
    last, depth, dropped = spool_state(workdir, agent_id)
    assert depth == 0 and dropped == 0 and last > 0
    assert stored_seqs(collector, agent_id) == {"n": last, "distinct_seqs": last, "lo": 1, "hi": last}
    return last


def test_collector_down_for_a_while_then_everything_arrives_once(tmp_path: Path) -> None:
    collector = Collector(tmp_path).start()
    agents = {
        aid: start_agent(tmp_path, aid, aid[:2], collector.address, refused_checks())
        for aid in ("it-1", "fr-1")
    }
    with stopped_on_exit(collector, *agents.values()):
        wait_until(lambda: all(_count(collector, a) > 20 for a in agents), 60, "results from both agents")
        collector.stop()
        # Well past the spool's first flush: results pile up in the spools meanwhile.
        wait_until(
            lambda: all(spool_state(tmp_path, a)[1] > 150 for a in agents), 60, "spools filling while down"
        )
        collector.start()
        for agent_id, proc in agents.items():
            _drain_and_prove(tmp_path, collector, proc, agent_id, agent_id[:2])


def test_collector_kill_9_mid_stream_repeatedly(tmp_path: Path) -> None:
    collector = Collector(tmp_path).start()
    agents = {
        aid: start_agent(tmp_path, aid, aid[:2], collector.address, refused_checks(6))
        for aid in ("it-1", "de-1")
    }
    with stopped_on_exit(collector, *agents.values()):
        for _ in range(3):
            floor = sum(_count(collector, a) for a in agents)
            wait_until(
                lambda f=floor: sum(_count(collector, a) for a in agents) > f + 50,
                60,  # type: ignore[misc]
                "more rows since the last kill",
            )
            collector.stop(signal.SIGKILL)
            collector.start()
        for agent_id, proc in agents.items():
            _drain_and_prove(tmp_path, collector, proc, agent_id, agent_id[:2])


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_store_unavailable_holds_everything_then_a_working_store_gets_it_once(tmp_path: Path) -> None:
    broken = Collector(
        tmp_path,
        extra={
            "store": {
                "url": f"http://127.0.0.1:{free_port()}/",
                "flush_interval": "200ms",
                "max_pending_rows": 2000,
            }
        },
    )
    config = broken.write_config()
    broken.proc = spawn(
        "collector-broken", [str(BIN / "probe-collector"), "serve", "--config", str(config)], tmp_path
    )
    agent = start_agent(tmp_path, "it-1", "it", broken.address, refused_checks())
    with stopped_on_exit(broken, agent):
        wait_until(
            lambda: _get(f"{broken.api}/readyz")[0] == 503 if _up(broken) else False, 60, "collector up"
        )
        status, body = _get(f"{broken.api}/readyz")
        assert status == 503 and "store unavailable" in body
        wait_until(lambda: spool_state(tmp_path, "it-1")[1] > 50, 60, "agent spooling")
        rss_early = _rss_kb(broken.proc.popen.pid), _rss_kb(agent.popen.pid)
        wait_until(lambda: spool_state(tmp_path, "it-1")[1] > 250, 60, "agent keeps spooling")
        # Bounded on both sides: the collector holds nothing, the agent spools to disk.
        assert _rss_kb(broken.proc.popen.pid) - rss_early[0] < 64 * 1024
        assert _rss_kb(agent.popen.pid) - rss_early[1] < 64 * 1024
        assert broken.proc.popen.poll() is None, "collector must keep running without its store"
        assert "slow down" in agent.output() and "store unavailable" in agent.output()
        broken.stop()
        working = Collector(tmp_path, grpc_port=broken.grpc_port, api_port=broken.api_port).start()
        with stopped_on_exit(working):
            _drain_and_prove(tmp_path, working, agent, "it-1", "it")


def _up(collector: Collector) -> bool:
    with contextlib.suppress(OSError, urllib.error.URLError):
        return _get(f"{collector.api}/healthz")[0] == 200
    return False


def test_agent_kill_9_and_restart_replays_itsspool_state(tmp_path: Path) -> None:
    collector = Collector(tmp_path).start()
    agent = start_agent(tmp_path, "it-1", "it", collector.address, refused_checks())
    with stopped_on_exit(collector, agent):
        for _ in range(2):
            floor = _count(collector, "it-1")
            wait_until(lambda f=floor: _count(collector, "it-1") > f + 30, 60, "agent delivering")  # type: ignore[misc]
            agent.stop(signal.SIGKILL)
            agent = start_agent(tmp_path, "it-1", "it", collector.address, refused_checks())
        wait_until(lambda: _count(collector, "it-1") > floor + 60, 60, "restarted agent delivering")
        _drain_and_prove(tmp_path, collector, agent, "it-1", "it")


def _ca(*args: str) -> None:
    subprocess.run([str(BIN / "probe-collector"), "ca", *args], check=True, capture_output=True, timeout=60)


def test_mtls_refuses_wrong_ca_missing_certificate_and_a_foreign_region(tmp_path: Path) -> None:
    pki, rogue = tmp_path / "pki", tmp_path / "rogue"
    _ca("init", "--dir", str(pki))
    _ca("issue-collector", "--dir", str(pki), "--host", "127.0.0.1")
    _ca("issue-agent", "--dir", str(pki), "--region", "it", "--agent-id", "it-1")
    _ca("issue-agent", "--dir", str(pki), "--region", "fr", "--agent-id", "fr-1")
    _ca("init", "--dir", str(rogue))
    _ca("issue-agent", "--dir", str(rogue), "--region", "it", "--agent-id", "it-2")
    tls = {
        "ca": str(pki / "ca.pem"),
        "cert": str(pki / "collector.pem"),
        "key": str(pki / "collector-key.pem"),
    }
    collector = Collector(tmp_path, extra={"insecure": False, "tls": tls}).start()

    def agent(agent_id: str, region: str, certs: Path, cert_id: str) -> Proc:
        files = {
            "ca": str(pki / "ca.pem"),
            "cert": str(certs / f"agent-{cert_id}.pem"),
            "key": str(certs / f"agent-{cert_id}-key.pem"),
        }
        return start_agent(
            tmp_path, agent_id, region, collector.address, refused_checks(2), insecure=False, tls=files
        )

    honest = agent("it-1", "it", pki, "it-1")
    impostor = agent("it-2", "it", rogue, "it-2")
    foreign = agent("fr-1", "it", pki, "fr-1")  # an fr certificate claiming to be in it
    with stopped_on_exit(collector, honest, impostor, foreign):
        wait_until(lambda: _count(collector, "it-1") > 10, 60, "honest agent delivering")
        wait_until(lambda: "PERMISSION_DENIED" in foreign.output(), 60, "foreign region refused")
        wait_until(lambda: "UNAVAILABLE" in impostor.output(), 60, "wrong CA refused at handshake")
        assert "certificate is for region 'fr', hello claims 'it'" in foreign.output()
        log = collector.proc.output()  # type: ignore[union-attr]
        assert "refused agent stream" in log and "PERMISSION_DENIED" in log
        # Refusals at the TLS layer are logged by gRPC itself.
        assert "CERTIFICATE_VERIFY_FAILED" in log
        code = _without_client_certificate(collector.address, pki / "ca.pem")
        assert code == grpc.StatusCode.UNAVAILABLE
        wait_until(
            lambda: "PEER_DID_NOT_RETURN_A_CERTIFICATE" in collector.proc.output(),  # type: ignore[union-attr]
            30,
            "missing client certificate logged",
        )
        rows = collector.query(
            "SELECT agent_id, region, count() AS n FROM probe_results GROUP BY agent_id, region"
        )
        assert {(r["agent_id"], r["region"]) for r in rows} == {("it-1", "it")}
        _drain_and_prove(tmp_path, collector, honest, "it-1", "it")


def _without_client_certificate(address: str, ca_file: Path) -> grpc.StatusCode:
    from probenet.v1 import stream_pb2, stream_pb2_grpc

    creds = grpc.ssl_channel_credentials(root_certificates=ca_file.read_bytes())
    with grpc.secure_channel(address, creds) as channel:
        hello = stream_pb2.AgentMessage(hello=stream_pb2.Hello(agent_id="it-1", region="it"))
        try:
            for _ in stream_pb2_grpc.CollectorStub(channel).Stream(iter([hello]), timeout=10):
                break
        except grpc.RpcError as exc:
            return exc.code()  # type: ignore[no-any-return]
    raise AssertionError("a stream without a client certificate was accepted")
