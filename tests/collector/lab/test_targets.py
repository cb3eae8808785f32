"""Target servers on loopback: the served certificate and behaviour follow the fault of the moment."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from collector.lab.faults import Effect
from collector.lab.runner import _shared_port
from collector.lab.scenario import scenario_from_mapping
from collector.lab.targets import CertificateSet, LabCA, TargetServers, page_html, target_address

SCENARIO = scenario_from_mapping(
    {
        "name": "t",
        "regions": {"it": 1},
        "targets": {
            "shop": {"kind": "page", "assets": 4, "asset_host": "static"},
            "static": {"kind": "https"},
        },
        "checks": [{"id": "c", "probe": "page", "target": "shop"}],
    },
    "t.yaml",
)


async def fetch(address: str, port: int, ca: LabCA, host: str, path: str = "/") -> tuple[str, bytes]:
    ctx = ssl.create_default_context(cadata=ca.pem)
    reader, writer = await asyncio.open_connection(address, port, ssl=ctx, server_hostname=host)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode().split("\r\n")[0], body


async def leaf_of(address: str, port: int) -> x509.Certificate:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection(address, port, ssl=ctx)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der)


def test_servers_follow_the_faults(tmp_path: Path) -> None:
    effects: dict[tuple[str, str], Effect] = {}
    ca = LabCA.create()

    async def scenario() -> None:
        shop, static = target_address(230, 0), target_address(230, 1)
        port = _shared_port([shop, static])
        servers = TargetServers(
            SCENARIO, {"it-1": 230}, port, CertificateSet(ca, tmp_path), lambda a, t: effects.get((a, t))
        )
        await servers.start()
        try:
            status, body = await fetch(shop, port, ca, "shop.lab.test")
            assert status == "HTTP/1.1 200 OK"
            assert body.count(b"https://static.lab.test:") == 4
            status, _ = await fetch(static, port, ca, "static.lab.test", "/assets/a0.css")
            assert status == "HTTP/1.1 200 OK"

            effects[("it-1", "static")] = Effect("cert_expired")
            with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
                await fetch(static, port, ca, "static.lab.test")
            leaf = await leaf_of(static, port)
            assert leaf.not_valid_after_utc < dt.datetime.now(dt.UTC)

            effects[("it-1", "static")] = Effect("cert_wrong_host")
            with pytest.raises(ssl.SSLCertVerificationError, match="match"):
                await fetch(static, port, ca, "static.lab.test")

            effects[("it-1", "static")] = Effect("cert_untrusted")
            with pytest.raises(ssl.SSLCertVerificationError):
                await fetch(static, port, ca, "static.lab.test")

            effects[("it-1", "shop")] = Effect("http_status", 503)
            status, _ = await fetch(shop, port, ca, "shop.lab.test")
            assert status.startswith("HTTP/1.1 503")

            effects[("it-1", "shop")] = Effect("reset")
            with pytest.raises((ConnectionResetError, ssl.SSLError, asyncio.IncompleteReadError)):
                await fetch(shop, port, ca, "shop.lab.test")

            effects[("it-1", "shop")] = Effect("refuse")
            await servers.apply()
            with pytest.raises(ConnectionRefusedError):
                await fetch(shop, port, ca, "shop.lab.test")

            effects[("it-1", "shop")] = Effect("blackhole")
            await servers.apply()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await fetch(shop, port, ca, "shop.lab.test")

            del effects[("it-1", "shop")]
            status, _ = await fetch(shop, port, ca, "shop.lab.test")
            assert status == "HTTP/1.1 200 OK"
        finally:
            await servers.close()

    asyncio.run(scenario())


def test_page_lists_its_assets_on_the_asset_host() -> None:
    html = page_html(SCENARIO.targets["shop"], 8443).decode()
    assert '<link rel="stylesheet" href="https://static.lab.test:8443/assets/a0.css">' in html
    assert '<script src="https://static.lab.test:8443/assets/a1.js"></script>' in html
    assert '<img src="https://static.lab.test:8443/assets/a2.png" alt="">' in html
