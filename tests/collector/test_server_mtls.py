"""mTLS identity: the collector stores results under the identity in the verified certificate only."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

import grpc
import pytest
from prometheus_client import generate_latest

from collector import ca
from collector.store import Store
from collector.web import CollectorMetrics
from tests.collector.stream_kit import (
    Pki,
    acks,
    batch,
    exchange,
    hello,
    mtls_config,
    result,
    running_collector,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.create(tmp_path_factory.mktemp("pki"))


def _rows(store: Store, agent_id: str) -> list[tuple[object, ...]]:
    return store.query(
        "SELECT agent_id, region, count() FROM probe_results WHERE agent_id = {a:String} GROUP BY agent_id, region",
        {"a": agent_id},
    )[1]


async def _send(
    pki: Pki,
    store: Store,
    issued: ca.Issued | None,
    claim: tuple[str, str],
    results: list[object],
    *,
    credentials: grpc.ChannelCredentials | None = None,
) -> list[int]:
    async with running_collector(store, mtls_config(pki)) as col:
        creds = credentials or pki.credentials(issued)
        async with grpc.aio.secure_channel(col.address, creds) as channel:
            # No batch after a hello the collector refuses: a write racing the abort can surface
            # as INTERNAL instead of the refusal's own status.
            messages = [hello(*claim), batch(results)] if results else [hello(*claim)]  # type: ignore[arg-type]
            replies = await exchange(channel, messages, until_ack=len(results))
    return acks(replies)


def test_agent_certificate_identity_is_stored(pki: Pki, store: Store) -> None:
    issued = pki.agent("it", "it-1")
    got = asyncio.run(_send(pki, store, issued, ("it-1", "it"), [result(1), result(2), result(3)]))
    assert got[0] == 0 and got[-1] == 3
    assert _rows(store, "it-1") == [("it-1", "it", 3)]


def test_region_certificate_names_agent_from_hello(pki: Pki, store: Store) -> None:
    issued = ca.issue_region(pki.dir, pki.dir, "de")
    got = asyncio.run(_send(pki, store, issued, ("de-4", "de"), [result(1), result(2)]))
    assert got[-1] == 2
    assert _rows(store, "de-4") == [("de-4", "de", 2)]


def test_certificate_for_fr_cannot_send_as_it(
    pki: Pki, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    issued = pki.agent("fr", "fr-1")
    with caplog.at_level(logging.WARNING), pytest.raises(grpc.aio.AioRpcError) as info:
        asyncio.run(_send(pki, store, issued, ("fr-1", "it"), []))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "certificate is for region 'fr', hello claims 'it'" in (info.value.details() or "")
    assert "refused agent stream" in caplog.text
    assert _rows(store, "fr-1") == []


def test_results_claiming_another_agent_are_refused(pki: Pki, store: Store) -> None:
    issued = pki.agent("it", "it-2")
    forged = [
        result(1, agent_id="it-2", region="it"),
        result(2, agent_id="fr-1", region="fr"),
        result(3, agent_id="it-3", region="it"),
    ]
    got = asyncio.run(_send(pki, store, issued, ("it-2", "it"), forged))
    assert got[-1] == 3  # settled, so the forged ones are not resent forever
    assert _rows(store, "it-2") == [("it-2", "it", 1)]
    assert _rows(store, "fr-1") == [] and _rows(store, "it-3") == []


def test_expired_certificate_is_refused_at_handshake(pki: Pki, store: Store) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    issued = pki.agent("it", "it-old", days=1, not_before=past)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        asyncio.run(_send(pki, store, issued, ("it-old", "it"), [result(1)]))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _rows(store, "it-old") == []


def test_certificate_from_another_ca_is_refused(pki: Pki, store: Store, tmp_path: Path) -> None:
    other = Pki.create(tmp_path / "other")
    issued = other.agent("it", "it-1")
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki.dir / "ca.pem").read_bytes(),
        private_key=issued.key.read_bytes(),
        certificate_chain=issued.cert.read_bytes(),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        asyncio.run(_send(pki, store, None, ("it-1", "it"), [result(99)], credentials=creds))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_missing_client_certificate_is_refused(pki: Pki, store: Store) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        asyncio.run(_send(pki, store, None, ("it-1", "it"), [result(99)]))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_our_ca_certificate_without_identity_is_unauthenticated(pki: Pki, store: Store) -> None:
    server_cert = ca.Issued(pki.dir / "collector.pem", pki.dir / "collector-key.pem")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        asyncio.run(_send(pki, store, server_cert, ("it-1", "it"), [result(99)]))
    # The collector certificate lacks clientAuth usage, so TLS or identity refuses it.
    assert info.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE)


def test_refused_tls_handshakes_are_counted_in_metrics(pki: Pki, store: Store, tmp_path: Path) -> None:
    """Issue 11: gRPC refuses a foreign or missing client certificate itself; /metrics shows it."""
    foreign = Pki.create(tmp_path / "foreign").agent("it", "it-1")

    async def scenario() -> bytes:
        async with running_collector(store, mtls_config(pki)) as col:
            for creds in (pki.credentials(foreign), pki.credentials(None)):
                async with grpc.aio.secure_channel(col.address, creds) as channel:
                    with pytest.raises(grpc.aio.AioRpcError):
                        await exchange(channel, [hello("it-1", "it")], until_ack=0, timeout=5)
            good = pki.credentials(pki.agent("it", "it-m"))
            async with grpc.aio.secure_channel(col.address, good) as channel:
                assert acks(await exchange(channel, [hello("it-m", "it")], until_ack=0)) == [0]
            metrics = CollectorMetrics(col.ingestor, col.service, None)
            return generate_latest(metrics.registry)

    text = asyncio.run(scenario()).decode()
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["probenet_agent_connections_total"] == 1
    assert values["probenet_tls_handshakes_total"] - values["probenet_agent_connections_total"] >= 2
