"""Every string and repeated field of a result is capped at the agent (issue 11 item 5): a pure
test of the caps and of the largest result they allow, and hostile targets on loopback (a TLS
server whose certificate carries hundreds of long SANs, a page with a 1 MB URL and hundreds of
failing hosts) through a real agent into its spool."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from probe_agent import limits
from probe_agent.agent import Agent
from probe_agent.config import config_from_mapping
from probe_agent.spool import Spool
from probenet.v1.probe_pb2 import HostFailures, ProbeResult
from tests.probe_agent.probes.certs import make_ca, make_leaf
from tests.probe_agent.probes.servers import closed_port, hang, serving
from tests.web import serving as serving_http


def _walk(message: Message) -> list[tuple[FieldDescriptor, Any]]:
    out = []
    for field, value in message.ListFields():
        out.append((field, value))
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                out.extend(_walk(item))
    return out


def _assert_capped(result: ProbeResult) -> None:
    for field, value in _walk(result):
        if field.is_repeated:
            assert len(value) <= limits.REPEATED.get(field.full_name, limits.DEFAULT_REPEATED), (
                field.full_name
            )
        if field.type == FieldDescriptor.TYPE_STRING:
            cap = limits.STRING_BYTES.get(field.full_name, limits.DEFAULT_STRING_BYTES)
            for text in value if field.is_repeated else [value]:
                assert len(text.encode()) <= cap, field.full_name
    assert result.ByteSize() <= limits.MAX_RESULT_BYTES


def test_hostile_strings_and_lists_are_cut_to_their_limits() -> None:
    result = ProbeResult(check_id="c" * 1000, error="é" * 600_000, failure_host="h" * 5000)
    result.tls.verify_error = "certificate is for " + ", ".join(f"n{i}.example" for i in range(100_000))
    for _ in range(15):
        cert = result.tls.chain.add(subject="CN=" + "s" * 5000)
        cert.sans.extend([f"{'a' * 300}.example"] * 5000)
    result.page.failed_hosts.extend([HostFailures(host="x" * 999, sample_url="u" * 1_000_000)] * 300)
    result.http.redirects.add(url="https://r/" + "r" * 100_000)
    before = result.ByteSize()
    limits.cap_result(result)
    _assert_capped(result)
    assert before > 300_000_000 and result.ByteSize() < before / 1000
    assert result.error.endswith("more bytes cut]") and set(result.error.split(" ... ")[0]) == {"é"}
    assert len(result.tls.chain) == 10 and len(result.tls.chain[0].sans) == 100
    assert len(result.page.failed_hosts) == 20 and len(result.check_id) == limits.ID_BYTES


def test_short_values_are_left_alone() -> None:
    result = ProbeResult(check_id="shop", error="connection refused", target="https://shop.example/")
    result.tls.chain.add(subject="CN=shop", sans=["shop.example", "www.shop.example"])
    copy = ProbeResult()
    copy.CopyFrom(result)
    assert limits.cap_result(result) == copy


def _fill_to_the_limits(message: Message, descriptor: Descriptor) -> None:
    for field in descriptor.fields:
        count = limits.REPEATED.get(field.full_name, limits.DEFAULT_REPEATED) if field.is_repeated else 1
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.full_name.startswith("google.protobuf"):
                continue
            for _ in range(count):
                child = (
                    getattr(message, field.name).add() if field.is_repeated else getattr(message, field.name)
                )
                _fill_to_the_limits(child, field.message_type)
        elif field.type == FieldDescriptor.TYPE_STRING:
            text = "w" * limits.STRING_BYTES.get(field.full_name, limits.DEFAULT_STRING_BYTES)
            if field.is_repeated:
                getattr(message, field.name).extend([text] * count)
            else:
                setattr(message, field.name, text)


def test_the_largest_result_the_limits_allow_is_within_max_result_bytes() -> None:
    result = ProbeResult()
    _fill_to_the_limits(result, ProbeResult.DESCRIPTOR)
    size = result.ByteSize()
    print(f"\nlargest capped result: {size} bytes (MAX_RESULT_BYTES {limits.MAX_RESULT_BYTES})")
    assert size <= limits.MAX_RESULT_BYTES
    limits.cap_result(result)
    assert result.ByteSize() == size  # at the limits exactly, nothing more is cut


def _spooled(tmp_path: Path, check: dict[str, Any]) -> ProbeResult:
    """Run a real agent with one check until its first result is in the spool; return it."""
    config = config_from_mapping(
        {
            "agent_id": "lim-1",
            "region": "it",
            "collector": f"127.0.0.1:{closed_port()}",
            "insecure": True,
            "spool": {"dir": str(tmp_path / "spool")},
            "shutdown_grace": 0,  # no collector to drain to: leave at once
            "checks": [{"id": "hostile", "interval": "1s", "timeout": "900ms", **check}],
        },
        "agent.yaml",
    )

    async def scenario() -> None:
        agent = Agent(config)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        deadline = time.monotonic() + 30
        while agent.spool.depth == 0:
            assert time.monotonic() < deadline, "no result spooled"
            await asyncio.sleep(0.05)
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    spool = Spool(tmp_path / "spool")
    try:
        return spool.read_after(0, 1)[0]
    finally:
        spool.close()


def test_certificate_with_hundreds_of_long_sans_is_capped_in_the_spool(tmp_path: Path) -> None:
    root = make_ca("hostile root")
    sans = ["hostile.example"] + [f"{i:04d}-{'s' * 220}.example" for i in range(340)]  # ~80 KB
    leaf = make_leaf(sans, root)
    leaf.chain.extend(make_ca(f"filler {i}").cert for i in range(12))  # 14 certificates presented
    with serving(hang, leaf.server_context(tmp_path, "hostile")) as server:
        check = {"probe": "tls", "target": f"127.0.0.1:{server.port}", "tls": {"ca_pem": root.pem}}
        result = _spooled(tmp_path, check)
    print(f"\nhostile TLS result in the spool: {result.ByteSize()} bytes")
    assert len(result.tls.chain) == 10 and len(result.tls.chain[0].sans) == 100
    assert result.tls.chain[0].sans[0] == sans[0]
    # Trusted but not for 127.0.0.1: the verdict quotes every SAN, ~80 KB, cut to its limit.
    assert result.tls.verify_error.startswith("certificate is for hostile.example, 0000-")
    assert result.tls.verify_error.endswith("more bytes cut]")
    _assert_capped(result)


def test_page_with_a_1mb_url_and_hundreds_of_failing_hosts_is_capped_in_the_spool(tmp_path: Path) -> None:
    port = closed_port()
    images = [f'<img src="http://127.0.0.1:{port}/{"a" * 1_000_000}">']
    images += [f'<img src="http://127.{i // 250}.{i % 250}.9:{port}/x.png">' for i in range(1, 190)]
    page = ("<html><body>" + "".join(images) + "</body></html>").encode()
    with serving_http(lambda path: (200, page, "text/html")) as web:
        result = _spooled(tmp_path, {"probe": "page", "target": f"http://127.0.0.1:{web}/"})
    print(f"\nhostile page result in the spool: {result.ByteSize()} bytes, {len(page)} bytes of page")
    assert result.page.resources_failed >= 20 and len(result.page.failed_hosts) == 20
    _assert_capped(result)
