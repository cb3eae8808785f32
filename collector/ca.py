"""A small certificate authority for probenet's mTLS, and the rule that turns a client
certificate into an agent identity.

Identity rule (the collector believes nothing else):

- An **agent certificate** carries exactly one URI SAN ``probenet://agent/<region>/<agent-id>``.
  Agent id and region both come from the certificate; a hello that claims anything else is
  refused.
- A **region certificate** carries exactly one URI SAN ``probenet://region/<region>``
  (``probe-collector ca issue-region``, or cert-manager). The region comes from the certificate,
  the agent id from the hello, so such an agent can speak for any agent of its own region but
  never for another region.
- A region certificate may instead name its region in exactly one DNS SAN
  ``<region>.region.probenet.internal``: the form Helm's ``genSignedCert`` can write (it takes a
  CN, IPs and DNS names, never URIs), so the chart issues one per region without cert-manager.
  It means the same as ``probenet://region/<region>``. The suffix ``.region.probenet.internal``
  is reserved (matched without regard to case; ``.internal`` is never delegated in public DNS,
  and agents never dial such a name, so a region key cannot pose as the collector); the region
  is the single label before it, kept as written. Other DNS SANs are ignored.
- A certificate with no identity, with several identities (two URIs, two reserved DNS names),
  with both kinds (a reserved DNS name next to any ``probenet://`` URI), or with a malformed
  one is refused.

Region and agent ids are 1-64 characters of ``[A-Za-z0-9._-]`` (a region in DNS form has no
dot: it is one label). Certificate chain and validity are checked by the TLS layer (the
collector requires a client certificate from its CA); the expiry is checked again here so a
certificate that expired during a long-lived connection is refused at the next connect with a
clear message.

Collector certificates carry DNS and IP SANs for the names agents dial.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

AGENT_URI_PREFIX = "probenet://agent/"
REGION_URI_PREFIX = "probenet://region/"
# Reserved DNS SAN suffix of a region certificate (the form Helm's genSignedCert can write).
REGION_DNS_SUFFIX = ".region.probenet.internal"
CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class IdentityError(ValueError):
    """The certificate does not name a usable agent identity; the message says why."""


@dataclass(frozen=True)
class CertIdentity:
    region: str
    agent_id: str | None  # None for a region certificate: the hello names the agent

    def resolve(self, hello_agent_id: str, hello_region: str) -> tuple[str, str]:
        """The (agent_id, region) this connection may speak for, given what the hello claims."""
        if hello_region and hello_region != self.region:
            raise IdentityError(f"certificate is for region {self.region!r}, hello claims {hello_region!r}")
        if self.agent_id is None:
            if not valid_id(hello_agent_id):
                raise IdentityError(
                    f"region certificate needs a valid agent_id in the hello, got {hello_agent_id!r}"
                )
            return hello_agent_id, self.region
        if hello_agent_id and hello_agent_id != self.agent_id:
            raise IdentityError(
                f"certificate is for agent {self.agent_id!r}, hello claims {hello_agent_id!r}"
            )
        return self.agent_id, self.region


def valid_id(value: str) -> bool:
    return bool(_ID.match(value))


def agent_uri(region: str, agent_id: str) -> str:
    return f"{AGENT_URI_PREFIX}{region}/{agent_id}"


def region_uri(region: str) -> str:
    return f"{REGION_URI_PREFIX}{region}"


def region_dns_name(region: str) -> str:
    return f"{region}{REGION_DNS_SUFFIX}"


def identity_from_uris(uris: Sequence[str]) -> CertIdentity:
    return identity_from_sans(uris, ())


def _is_region_dns_name(name: str) -> bool:
    # The bare suffix (empty region) counts as ours too, so it is refused rather than ignored.
    return f".{name}".lower().endswith(REGION_DNS_SUFFIX)


def identity_from_sans(uris: Sequence[str], dns_names: Sequence[str]) -> CertIdentity:
    """The identity named by a certificate's URI and DNS SANs (the rule in the module docstring)."""
    our_uris = [u for u in uris if u.startswith("probenet://")]
    our_names = [n for n in dns_names if _is_region_dns_name(n)]
    if our_uris and our_names:
        raise IdentityError(
            f"certificate mixes a probenet:// URI SAN with a DNS SAN ending in {REGION_DNS_SUFFIX}; "
            "exactly one identity is allowed"
        )
    if our_names:
        return _identity_from_dns_names(our_names)
    if not our_uris:
        raise IdentityError(
            "certificate has no probenet identity: no probenet:// URI SAN and no DNS SAN "
            f"<region>{REGION_DNS_SUFFIX}"
        )
    return _identity_from_uri(our_uris)


def _identity_from_dns_names(names: Sequence[str]) -> CertIdentity:
    if len(names) > 1:
        raise IdentityError(
            f"certificate has {len(names)} DNS SANs ending in {REGION_DNS_SUFFIX}; exactly one is allowed"
        )
    region = names[0][: -len(REGION_DNS_SUFFIX)]
    if valid_id(region) and "." not in region:
        return CertIdentity(region, None)
    raise IdentityError(f"malformed identity DNS name {names[0]!r}")


def _identity_from_uri(uris: Sequence[str]) -> CertIdentity:
    if len(uris) > 1:
        raise IdentityError(f"certificate has {len(uris)} probenet:// URI SANs; exactly one is allowed")
    uri = uris[0]
    if uri.startswith(AGENT_URI_PREFIX):
        region, sep, agent_id = uri.removeprefix(AGENT_URI_PREFIX).partition("/")
        if sep and valid_id(region) and valid_id(agent_id):
            return CertIdentity(region, agent_id)
    elif uri.startswith(REGION_URI_PREFIX):
        region = uri.removeprefix(REGION_URI_PREFIX)
        if valid_id(region):
            return CertIdentity(region, None)
    raise IdentityError(f"malformed identity URI {uri!r}")


def identity_from_pem(pem: bytes, now: dt.datetime | None = None) -> CertIdentity:
    """The identity in a (TLS-verified) client certificate."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise IdentityError(f"unreadable client certificate: {exc}") from exc
    moment = now or dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
        raise IdentityError(
            f"client certificate not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
        )
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise IdentityError("certificate has no subjectAltName") from exc
    return identity_from_sans(
        sans.get_values_for_type(x509.UniformResourceIdentifier), sans.get_values_for_type(x509.DNSName)
    )


# --- issuing ---


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_ca(
    name: str = "probenet CA", days: int = 3650
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate and its key, in memory."""
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def init_ca(out_dir: Path, name: str = "probenet CA", days: int = 3650) -> Issued:
    """Create a CA certificate and key in out_dir; refuse to overwrite an existing CA."""
    cert_path, key_path = out_dir / CA_CERT, out_dir / CA_KEY
    if cert_path.exists() or key_path.exists():
        raise FileExistsError(
            f"{cert_path} already exists; a second CA would orphan every issued certificate"
        )
    cert, key = new_ca(name, days)
    _write(key_path, _key_pem(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return Issued(cert_path, key_path)


def load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
    key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_dir / CA_KEY}: expected an EC key")
    return cert, key


def _leaf(  # noqa: PLR0917
    ca_dir: Path,
    common_name: str,
    sans: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
    days: float,
    not_before: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    ca_cert, ca_key = load_ca(ca_dir)
    key = _new_key()
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _save(out_dir: Path, stem: str, pems: tuple[bytes, bytes]) -> Issued:
    cert_path, key_path = out_dir / f"{stem}.pem", out_dir / f"{stem}-key.pem"
    _write(cert_path, pems[0])
    _write(key_path, pems[1], private=True)
    return Issued(cert_path, key_path)


def issue_agent(  # noqa: PLR0917
    ca_dir: Path,
    out_dir: Path,
    region: str,
    agent_id: str,
    days: float = 397,
    not_before: dt.datetime | None = None,
) -> Issued:
    """Certificate for one agent: agent-<id>.pem / agent-<id>-key.pem."""
    for what, value in (("region", region), ("agent id", agent_id)):
        if not valid_id(value):
            raise ValueError(f"{what} {value!r}: use 1-64 characters of A-Z a-z 0-9 . _ -")
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(agent_uri(region, agent_id))]
    pems = _leaf(ca_dir, agent_id, sans, [ExtendedKeyUsageOID.CLIENT_AUTH], days, not_before)
    return _save(out_dir, f"agent-{agent_id}", pems)


def issue_region(ca_dir: Path, out_dir: Path, region: str, days: float = 397) -> Issued:
    """Certificate shared by a region's agents: region-<region>.pem (agent id from the hello)."""
    if not valid_id(region):
        raise ValueError(f"region {region!r}: use 1-64 characters of A-Z a-z 0-9 . _ -")
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(region_uri(region))]
    pems = _leaf(ca_dir, f"region {region}", sans, [ExtendedKeyUsageOID.CLIENT_AUTH], days)
    return _save(out_dir, f"region-{region}", pems)


def issue_collector(ca_dir: Path, out_dir: Path, hosts: Sequence[str], days: float = 397) -> Issued:
    """Server certificate for the collector: collector.pem with a DNS or IP SAN per host."""
    if not hosts:
        raise ValueError("at least one --host is required")
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    pems = _leaf(ca_dir, hosts[0], sans, [ExtendedKeyUsageOID.SERVER_AUTH], days)
    return _save(out_dir, "collector", pems)
