"""The CA issues certificates whose identity the collector reads back; the CLI drives it."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from collector import ca
from collector.cli import main
from collector.store import Store
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
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    ca.init_ca(directory)
    return directory


def test_agent_certificate_carries_agent_id_and_region(ca_dir: Path) -> None:
    issued = ca.issue_agent(ca_dir, ca_dir, "it", "it-1")
    identity = ca.identity_from_pem(issued.cert.read_bytes())
    assert identity == ca.CertIdentity("it", "it-1")
    assert identity.resolve("it-1", "it") == ("it-1", "it")
    assert identity.resolve("", "") == ("it-1", "it")
    with pytest.raises(ca.IdentityError, match="region 'it', hello claims 'fr'"):
        identity.resolve("it-1", "fr")
    with pytest.raises(ca.IdentityError, match="agent 'it-1', hello claims 'it-2'"):
        identity.resolve("it-2", "it")


def test_region_certificate_takes_agent_id_from_hello_but_never_another_region(ca_dir: Path) -> None:
    issued = ca.issue_region(ca_dir, ca_dir, "fr")
    identity = ca.identity_from_pem(issued.cert.read_bytes())
    assert identity == ca.CertIdentity("fr", None)
    assert identity.resolve("fr-7", "fr") == ("fr-7", "fr")
    with pytest.raises(ca.IdentityError, match="region 'fr', hello claims 'it'"):
        identity.resolve("it-1", "it")
    with pytest.raises(ca.IdentityError, match="valid agent_id"):
        identity.resolve("", "fr")


def test_expired_certificate_is_refused(ca_dir: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    issued = ca.issue_agent(ca_dir, ca_dir / "old", "it", "it-9", days=1, not_before=past)
    with pytest.raises(ca.IdentityError, match="not valid now"):
        ca.identity_from_pem(issued.cert.read_bytes())


@pytest.mark.parametrize(
    ("uris", "message"),
    [
        ([], "no probenet:// URI"),
        (["https://example.test/"], "no probenet:// URI"),
        (["probenet://agent/it/it-1", "probenet://region/it"], "exactly one"),
        (["probenet://agent/it"], "malformed"),
        (["probenet://agent/it/a/b"], "malformed"),
        (["probenet://region/"], "malformed"),
        (["probenet://other/it"], "malformed"),
    ],
)
def test_identity_uri_rules(uris: list[str], message: str) -> None:
    with pytest.raises(ca.IdentityError, match=message):
        ca.identity_from_uris(uris)


def helm_style_certificate(ca_dir: Path, out_dir: Path, common_name: str, dns_names: list[str]) -> ca.Issued:
    """What sprig's genSignedCert writes: RSA 2048, CN, DNS SANs, server+client auth, not before now."""
    ca_cert, ca_key = ca.load_ca(ca_dir)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    issued = ca.Issued(out_dir / f"{common_name}.pem", out_dir / f"{common_name}-key.pem")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(key_pem)
    return issued


def test_dns_san_region_certificate_names_region_and_takes_agent_id_from_hello(ca_dir: Path) -> None:
    issued = helm_style_certificate(ca_dir, ca_dir / "helm", "agents-it", ["it.region.probenet.internal"])
    identity = ca.identity_from_pem(issued.cert.read_bytes())
    assert identity == ca.CertIdentity("it", None)
    assert identity.resolve("pn-probenet-agent-it-5d9f-x2", "it") == ("pn-probenet-agent-it-5d9f-x2", "it")
    with pytest.raises(ca.IdentityError, match="region 'it', hello claims 'fr'"):
        identity.resolve("fr-1", "fr")
    with pytest.raises(ca.IdentityError, match="valid agent_id"):
        identity.resolve("", "it")


@pytest.mark.parametrize(
    ("uris", "dns_names", "expected"),
    [
        ([], ["it.region.probenet.internal"], ca.CertIdentity("it", None)),
        (
            [],
            ["agents-it", "eu-west.region.probenet.internal", "x.example"],
            ca.CertIdentity("eu-west", None),
        ),
        (["https://example.test/"], ["fr.region.probenet.internal"], ca.CertIdentity("fr", None)),
        ([], ["de.Region.Probenet.Internal"], ca.CertIdentity("de", None)),
        (["probenet://region/it"], ["collector.example"], ca.CertIdentity("it", None)),
    ],
)
def test_identity_dns_san_accepted(uris: list[str], dns_names: list[str], expected: ca.CertIdentity) -> None:
    assert ca.identity_from_sans(uris, dns_names) == expected


@pytest.mark.parametrize(
    ("uris", "dns_names", "message"),
    [
        ([], ["it.region.probenet.internal", "fr.region.probenet.internal"], "2 DNS SANs .* exactly one"),
        ([], ["it.region.probenet.internal", "it.region.probenet.internal"], "2 DNS SANs .* exactly one"),
        (["probenet://region/it"], ["it.region.probenet.internal"], "mixes"),
        (["probenet://agent/it/it-1"], ["it.region.probenet.internal"], "mixes"),
        (["probenet://region/"], ["it.region.probenet.internal"], "mixes"),
        ([], ["region.probenet.internal"], "malformed identity DNS name"),
        ([], ["*.region.probenet.internal"], "malformed identity DNS name"),
        ([], ["eu.west.region.probenet.internal"], "malformed identity DNS name"),
        ([], ["agents-it", "it.probenet.internal"], "no probenet identity"),
    ],
)
def test_identity_dns_san_refused(uris: list[str], dns_names: list[str], message: str) -> None:
    with pytest.raises(ca.IdentityError, match=message):
        ca.identity_from_sans(uris, dns_names)


def test_collector_accepts_an_agent_with_a_helm_generated_certificate(tmp_path: Path) -> None:
    """Real gRPC with mTLS: a genSignedCert-style region certificate is enough for the collector."""
    pki = Pki.create(tmp_path / "pki")
    issued = helm_style_certificate(pki.dir, tmp_path / "helm", "agents-nl", ["nl.region.probenet.internal"])
    store = Store(f"chdb://{tmp_path / 'store'}")

    async def send() -> list[int]:
        messages = [hello("pn-agent-nl-1", "nl"), batch([result(1), result(2)])]
        async with (
            running_collector(store, mtls_config(pki)) as col,
            grpc.aio.secure_channel(col.address, pki.credentials(issued)) as channel,
        ):
            return acks(await exchange(channel, messages, until_ack=2))

    try:
        assert asyncio.run(send())[-1] == 2
        rows = store.query("SELECT agent_id, region, count() FROM probe_results GROUP BY agent_id, region")[1]
    finally:
        store.close()
    assert rows == [("pn-agent-nl-1", "nl", 2)]


def test_collector_certificate_has_dns_and_ip_sans(ca_dir: Path) -> None:
    issued = ca.issue_collector(ca_dir, ca_dir / "srv", ["collector.test", "127.0.0.1"])
    cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["collector.test"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert oct(issued.key.stat().st_mode & 0o777) == "0o600"


def test_ca_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = tmp_path / "pki"
    assert main(["ca", "init", "--dir", str(pki)]) == 0
    assert main(["ca", "init", "--dir", str(pki)]) == 2
    assert "already exists" in capsys.readouterr().err
    out = tmp_path / "issued"
    assert (
        main(
            [
                "ca",
                "issue-agent",
                "--dir",
                str(pki),
                "--out",
                str(out),
                "--region",
                "it",
                "--agent-id",
                "it-1",
            ]
        )
        == 0
    )
    assert ca.identity_from_pem((out / "agent-it-1.pem").read_bytes()) == ca.CertIdentity("it", "it-1")
    assert main(["ca", "issue-region", "--dir", str(pki), "--region", "de"]) == 0
    assert (pki / "region-de.pem").is_file()
    assert main(["ca", "issue-collector", "--dir", str(pki), "--host", "localhost"]) == 0
    assert (pki / "collector.pem").is_file()
    assert main(["ca", "issue-agent", "--dir", str(pki), "--region", "it", "--agent-id", "bad id"]) == 2
    assert "agent id 'bad id'" in capsys.readouterr().err
    assert (
        main(["ca", "issue-agent", "--dir", str(tmp_path / "none"), "--region", "it", "--agent-id", "x"]) == 2
    )
    assert "no CA in" in capsys.readouterr().err
