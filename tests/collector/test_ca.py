"""The CA issues certificates whose identity the collector reads back; the CLI drives it."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509

from collector import ca
from collector.cli import main


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
