"""mTLS material the chart generates itself: no cert-manager, and identities the collector accepts.

Each region's client certificate comes from genSignedCert (CN agents-<region>, DNS SAN
<region>.region.probenet.internal) signed by the chart's genCA CA. The rendered PEMs are read
back with cryptography and run through collector.ca's identity rule, and a real collector with
the chart's own CA and server certificate accepts a real agent holding the region certificate.
"""

from __future__ import annotations

import asyncio
import base64
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from cryptography import x509

from collector import ca
from collector.config import CollectorConfig, TlsFiles
from collector.store import Store
from probenet.v1 import stream_pb2
from tests.collector.stream_kit import acks, batch, exchange, hello, result, running_collector
from tests.helm.helm_support import CHART, RELEASE, Helm, Rendered, parse, values_of

Render = Callable[..., Rendered]

THREE_REGIONS = CHART / "ci" / "three-regions-values.yaml"
GENERATING = [None, CHART / "ci" / "minimal-values.yaml", THREE_REGIONS]
CA_SECRET = f"{RELEASE}-probenet-ca"
COLLECTOR_SECRET = f"{RELEASE}-probenet-collector-tls"


def agent_secret(region: str) -> str:
    return f"{RELEASE}-probenet-agent-{region}-tls"


def pem(secret: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(secret["data"][key])


def certificate(secret: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem(secret, "tls.crt"))


def test_default_install_renders_no_cert_manager_objects(render: Render) -> None:
    # cert-manager.io/v1 is among the served API versions here: the default still must not use it.
    rendered = render(None)
    assert not rendered.of_kind("Certificate") and not rendered.of_kind("Issuer")
    assert not [d for d in rendered.docs if d["apiVersion"].startswith("cert-manager.io/")]


@pytest.mark.parametrize(
    "values_file", GENERATING, ids=["defaults", *(p.stem for p in GENERATING if p is not None)]
)
def test_each_region_gets_a_generated_certificate_the_collector_accepts(
    render: Render, values_file: Path | None
) -> None:
    rendered = render(values_file)
    regions = [r["name"] for r in values_of(values_file)["agents"]["regions"]]
    agent_secrets = rendered.component("Secret", "agent")
    assert sorted(s["metadata"]["labels"]["probenet.io/region"] for s in agent_secrets) == sorted(regions)
    ca_cert = certificate(rendered.named("Secret", CA_SECRET))
    for region in regions:
        secret = rendered.named("Secret", agent_secret(region))
        assert secret["type"] == "kubernetes.io/tls"
        cert = certificate(secret)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == [f"{region}.region.probenet.internal"]
        assert sans.get_values_for_type(x509.UniformResourceIdentifier) == []
        assert cert.subject.rfc4514_string() == f"CN=agents-{region}"
        cert.verify_directly_issued_by(ca_cert)
        assert pem(secret, "ca.crt") == pem(rendered.named("Secret", CA_SECRET), "tls.crt")
        identity = ca.identity_from_pem(pem(secret, "tls.crt"))
        assert identity == ca.CertIdentity(region, None)
        assert identity.resolve(f"{RELEASE}-probenet-agent-{region}-0", region)[1] == region
        _assert_mounted_by_its_region(rendered, region, agent_secret(region))


def _assert_mounted_by_its_region(rendered: Rendered, region: str, secret_name: str) -> None:
    (deployment,) = [
        d for d in rendered.agent_workloads() if d["metadata"]["labels"]["probenet.io/region"] == region
    ]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == secret_name


def _write_pair(secret: dict[str, Any], directory: Path, stem: str) -> tuple[Path, Path]:
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert.write_bytes(pem(secret, "tls.crt"))
    key.write_bytes(pem(secret, "tls.key"))
    return cert, key


def test_chart_certificates_work_over_real_mtls(render: Render, tmp_path: Path) -> None:
    """The chart's CA, collector certificate and region certificate, as the pods would mount them."""
    rendered = render(THREE_REGIONS)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(pem(rendered.named("Secret", CA_SECRET), "tls.crt"))
    server_cert, server_key = _write_pair(rendered.named("Secret", COLLECTOR_SECRET), tmp_path, "collector")
    agent = rendered.named("Secret", agent_secret("it"))
    config = CollectorConfig(insecure=False, tls=TlsFiles(str(ca_file), str(server_cert), str(server_key)))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pem(agent, "ca.crt"),
        private_key=pem(agent, "tls.key"),
        certificate_chain=pem(agent, "tls.crt"),
    )
    # Agents dial the Service name, which is what the collector certificate names.
    options = [("grpc.ssl_target_name_override", f"{RELEASE}-probenet-collector")]
    store = Store(f"chdb://{tmp_path / 'store'}")

    async def send(messages: list[stream_pb2.AgentMessage]) -> list[int]:
        async with (
            running_collector(store, config) as col,
            grpc.aio.secure_channel(col.address, credentials, options=options) as channel,
        ):
            return acks(await exchange(channel, messages, until_ack=2))

    try:
        assert (
            asyncio.run(send([hello("pn-probenet-agent-it-1", "it"), batch([result(1), result(2)])]))[-1] == 2
        )
        # The hello alone: a write racing the collector's refusal would end as INTERNAL instead.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            asyncio.run(send([hello("pn-probenet-agent-fr-1", "fr")]))
        rows = store.query("SELECT agent_id, region, count() FROM probe_results GROUP BY agent_id, region")[1]
    finally:
        store.close()
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "certificate is for region 'it', hello claims 'fr'" in (refused.value.details() or "")
    assert rows == [("pn-probenet-agent-it-1", "it", 2)]


# --- kept across upgrades ---

LOOKUP = re.compile(r'lookup "v1" "Secret" \$ns (\$\w+)')


@pytest.fixture(scope="module")
def chart_with_fake_lookup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart whose TLS Secret lookups read `fakeSecrets` from the values instead of a cluster."""
    chart = tmp_path_factory.mktemp("chart") / "probenet"
    shutil.copytree(CHART, chart)
    (chart / "values.schema.json").unlink()  # it would refuse the extra fakeSecrets key
    template = chart / "templates" / "secret-tls.yaml"
    text, count = LOOKUP.subn(r"(dig \1 (dict) ($.Values.fakeSecrets | default dict))", template.read_text())
    assert count == 3, "secret-tls.yaml should look up the CA, collector and region Secrets"
    template.write_text(text)
    return chart


def _tls_secrets(
    helm: Helm, chart: Path, values: dict[str, Any], tmp_path: Path
) -> dict[str, dict[str, Any]]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = helm.run(
        "template", RELEASE, str(chart), "-n", "probenet", "-f", str(values_file),
        "--show-only", "templates/secret-tls.yaml",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {d["metadata"]["name"]: d for d in parse(result.stdout)}


def test_generated_certificates_are_kept_across_upgrades(
    helm: Helm, chart_with_fake_lookup: Path, tmp_path: Path
) -> None:
    regions = {"agents": {"regions": [{"name": "it"}, {"name": "fr"}]}}
    first = _tls_secrets(helm, chart_with_fake_lookup, regions, tmp_path)
    assert set(first) == {CA_SECRET, COLLECTOR_SECRET, agent_secret("it"), agent_secret("fr")}

    upgrade = {"agents": {"regions": [{"name": "it"}, {"name": "fr"}, {"name": "us"}]}, "fakeSecrets": first}
    second = _tls_secrets(helm, chart_with_fake_lookup, upgrade, tmp_path)
    for name, secret in first.items():
        assert second[name]["data"] == secret["data"], f"{name} changed on upgrade"
    added = certificate(second[agent_secret("us")])
    added.verify_directly_issued_by(certificate(first[CA_SECRET]))
    assert ca.identity_from_pem(pem(second[agent_secret("us")], "tls.crt")) == ca.CertIdentity("us", None)


def test_certificates_of_a_deleted_ca_are_reissued(
    helm: Helm, chart_with_fake_lookup: Path, tmp_path: Path
) -> None:
    regions = {"agents": {"regions": [{"name": "it"}]}}
    first = _tls_secrets(helm, chart_with_fake_lookup, regions, tmp_path)
    without_ca = {name: s for name, s in first.items() if name != CA_SECRET}
    second = _tls_secrets(helm, chart_with_fake_lookup, {**regions, "fakeSecrets": without_ca}, tmp_path)
    new_ca = certificate(second[CA_SECRET])
    assert new_ca != certificate(first[CA_SECRET])
    for name in (COLLECTOR_SECRET, agent_secret("it")):
        assert second[name]["data"]["tls.crt"] != first[name]["data"]["tls.crt"], (
            f"{name} kept an orphaned cert"
        )
        certificate(second[name]).verify_directly_issued_by(new_ca)
