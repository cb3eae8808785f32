"""Feed results into a running collector through the real ingest path: the agents' gRPC stream.

A test that needs a precise picture in the store (a regional outage with a known cause, a
certificate about to expire) streams these results exactly as an agent would, and waits for the
collector's ack, which comes only after ClickHouse accepted them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from probenet.v1 import stream_pb2, stream_pb2_grpc
from probenet.v1.probe_pb2 import FailureClass, HostFailures, Outcome, ProbeResult

ACK_TIMEOUT_S = 30.0


@dataclass
class FakeAgent:
    agent_id: str
    region: str
    results: list[ProbeResult] = field(default_factory=list)

    def add(
        self,
        check_id: str,
        at: float,
        *,
        failure: str = "",
        error: str = "",
        host: str = "",
        partial_hosts: tuple[str, ...] = (),
        probe: str = "http",
        target: str = "",
        ttfb_ms: float = 40.0,
        days_left: float | None = None,
    ) -> ProbeResult:
        """Append one result; `failure` is a failure class name like tcp_refused."""
        result = ProbeResult(
            check_id=check_id,
            agent_id=self.agent_id,
            region=self.region,
            seq=len(self.results) + 1,
            probe=probe,
            target=target or f"https://{check_id}.test/",
        )
        result.started_at.FromNanoseconds(int(at * 1e9))
        timings = result.timings
        timings.dns_ms, timings.connect_ms, timings.tls_ms = 2.0, 5.0, 12.0
        if failure:
            result.outcome = Outcome.OUTCOME_FAILED
            result.failure_class = FailureClass.Value(failure.upper())
            result.error = error or failure
            result.failure_host = host
            timings.total_ms = 19.0
        elif partial_hosts:
            result.outcome = Outcome.OUTCOME_PARTIAL
            timings.ttfb_ms, timings.transfer_ms = ttfb_ms, 3.0
            timings.total_ms = 19.0 + ttfb_ms + 3.0
            result.failure_class = FailureClass.SUBRESOURCE_FAILED
            result.failure_host = partial_hosts[0]
            result.page.resources_total = 10
            result.page.resources_failed = len(partial_hosts)
            result.page.failed_hosts.extend(
                HostFailures(host=h, failure_class=FailureClass.TLS_CERT_EXPIRED, count=1)
                for h in partial_hosts
            )
        else:
            result.outcome = Outcome.OUTCOME_SUCCESS
            timings.ttfb_ms, timings.transfer_ms = ttfb_ms, 3.0
            timings.total_ms = 19.0 + ttfb_ms + 3.0
            result.http.status_code = 200
        if days_left is not None:
            result.tls.days_left = days_left
            result.tls.earliest_expiry.FromNanoseconds(int((at + days_left * 86400) * 1e9))
            result.tls.verified = True
            result.tls.version = "TLSv1.3"
            leaf = result.tls.chain.add()
            leaf.subject = f"CN={check_id}.test"
            leaf.issuer = "CN=probenet test CA"
            leaf.sans.append(f"{check_id}.test")
        self.results.append(result)
        return result


async def stream(address: str, agent: FakeAgent, batch: int = 500) -> int:
    """Send every result of `agent` and return the acked seq once all are stored."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = stream_pb2_grpc.CollectorStub(channel).Stream()
        await call.write(
            stream_pb2.AgentMessage(
                hello=stream_pb2.Hello(
                    agent_id=agent.agent_id, region=agent.region, version="feed-1", capabilities=["http"]
                )
            )
        )
        for i in range(0, len(agent.results), batch):
            chunk = agent.results[i : i + batch]
            await call.write(stream_pb2.AgentMessage(batch=stream_pb2.ResultBatch(results=chunk)))
        last = agent.results[-1].seq if agent.results else 0
        acked = 0
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while acked < last:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{agent.agent_id}: acked {acked} of {last} in {ACK_TIMEOUT_S}s")
            message = await asyncio.wait_for(call.read(), remaining)
            if message is grpc.aio.EOF:
                raise AssertionError(f"{agent.agent_id}: stream closed at ack {acked}")
            if message.WhichOneof("msg") == "ack":
                acked = max(acked, message.ack.up_to_seq)
        await call.done_writing()
        call.cancel()
        return acked


def feed(address: str, *agents: FakeAgent) -> None:
    async def main() -> None:
        await asyncio.gather(*(stream(address, a) for a in agents))

    asyncio.run(main())


def regional_outage(now: float, minutes: float = 3.0, step: float = 10.0) -> list[FakeAgent]:
    """Three regions of two agents: `shop` is refused in `it` only, `assets` loads partially
    everywhere (an expired certificate on its CDN host), `api` is fine everywhere."""
    agents = [FakeAgent(f"{region}-{n}", region) for region in ("de", "fr", "it") for n in (1, 2)]
    start = now - minutes * 60
    for agent in agents:
        t = start
        while t < now:
            if agent.region == "it":
                agent.add(
                    "shop",
                    t,
                    failure="tcp_refused",
                    host="shop.test",
                    error="connect to 10.0.0.7:443: connection refused",
                )
            else:
                agent.add("shop", t, ttfb_ms=30.0 + 10 * (agent.region == "fr"), days_left=20.0)
            agent.add("api", t, ttfb_ms=15.0, days_left=200.0)
            agent.add("assets", t, probe="page", partial_hosts=("cdn.test",))
            t += step
    return agents


async def _live(
    address: str, agent: FakeAgent, add: Callable[[float], None], seconds: float, every: float
) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        call = stream_pb2_grpc.CollectorStub(channel).Stream()
        hello = stream_pb2.Hello(agent_id=agent.agent_id, region=agent.region, version="feed-1")
        await call.write(stream_pb2.AgentMessage(hello=hello))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sent = len(agent.results)
            add(time.time())
            fresh = agent.results[sent:]
            await call.write(stream_pb2.AgentMessage(batch=stream_pb2.ResultBatch(results=fresh)))
            await asyncio.sleep(every)
        await call.done_writing()
        call.cancel()


def feed_live(
    address: str, agent: FakeAgent, add: Callable[[float], None], seconds: float, every: float = 0.5
) -> None:
    """Stream results made now, every `every` seconds for `seconds`, like a running agent:
    `add(now)` appends this round's results to `agent`."""
    asyncio.run(_live(address, agent, add, seconds, every))
