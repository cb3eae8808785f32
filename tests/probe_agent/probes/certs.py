"""Certificate factory for the TLS matrix: roots, intermediates and leaves with chosen flaws.

Built with `cryptography` directly (trustme cannot make an expired intermediate or a leaf
carrying an AIA URL). Certificates follow the RFC 5280 profile webpki verifiers expect.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)
BASIC_CONSTRAINTS = ExtensionOID.BASIC_CONSTRAINTS


def new_key(kind: str = "ec") -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class Issued:
    cert: x509.Certificate
    key: PrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)  # what the server sends after the leaf

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def write_files(self, tmp: Path, name: str) -> tuple[Path, Path]:
        """PEM files a server loads: the leaf and the chain it sends, and the key (unencrypted)."""
        certfile, keyfile = tmp / f"{name}.crt", tmp / f"{name}.key"
        certfile.write_bytes(
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [self.cert, *self.chain])
        )
        keyfile.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return certfile, keyfile

    def server_context(
        self,
        tmp: Path,
        name: str,
        *,
        min_version: ssl.TLSVersion | None = None,
        max_version: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        certfile, keyfile = self.write_files(tmp, name)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)
        ctx.set_alpn_protocols(["http/1.1"])
        if min_version is not None:
            ctx.minimum_version = min_version
        if max_version is not None:
            ctx.maximum_version = max_version
        return ctx


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "probenet tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(
    common_name: str,
    parent: Issued | None = None,
    *,
    not_before: dt.datetime = NOW - 30 * DAY,
    not_after: dt.datetime = NOW + 3650 * DAY,
    key_kind: str = "ec",
) -> Issued:
    key = new_key(key_kind)
    issuer_key = parent.key if parent else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(parent.cert.subject if parent else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    cert = builder.sign(issuer_key, hashes.SHA256())
    chain = [parent.cert, *parent.chain] if parent and _is_intermediate(parent) else []
    return Issued(cert, key, chain)


def _is_intermediate(issued: Issued) -> bool:
    return issued.cert.subject != issued.cert.issuer


def make_leaf(
    hosts: list[str],
    issuer: Issued | None,
    *,
    not_before: dt.datetime = NOW - DAY,
    not_after: dt.datetime = NOW + 90 * DAY,
    key_kind: str = "ec",
    aia_url: str = "",
    send_chain: bool = True,
    ber_basic_constraints: bool = False,
) -> Issued:
    """A server certificate for `hosts`; issuer None makes it self-signed.

    ber_basic_constraints encodes cA=FALSE explicitly, which DER forbids: OpenSSL loads and
    serves such a certificate, cryptography cannot parse its extensions."""
    key = new_key(key_kind)
    subject = _name(hosts[0])
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    issuer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.UnrecognizedExtension(BASIC_CONSTRAINTS, b"\x30\x03\x01\x01\x00")
            if ber_basic_constraints
            else x509.BasicConstraints(ca=False, path_length=None),
            critical=True,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if aia_url:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(aia_url)
                    )
                ]
            ),
            critical=False,
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    chain: list[x509.Certificate] = []
    if issuer is not None and send_chain and _is_intermediate(issuer):
        chain = [issuer.cert, *issuer.chain]
    return Issued(cert, key, chain)
