"""Pure TLS helpers: read the presented chain, verify it ourselves, name what is wrong.

Why verify after the handshake instead of inside it: OpenSSL aborts a handshake whose
verification fails, and the presented chain is lost with it (blackbox_exporter #1119: no
certificate data exactly when a certificate expires). So the handshake runs with verification
off (one context, built once), the chain is read from the connection (`_sslobj.
get_unverified_chain()`, public only from Python 3.13), and this module judges it against the
trust store (the system bundle plus the check's own CAs). The caller sends nothing over a
connection whose chain failed verification (unless the check says insecure). One handshake
per probe; the verdict for a given chain is cached for a minute (bounded by its expiry).

Verification builds the path leaf -> presented intermediates -> trust anchor, each link's
signature checked with `cryptography`, then checks validity dates along the path, that issuers
are CAs, and the host name (RFC 6125, SANs only). This is deliberately as lenient as OpenSSL,
which is what curl and most clients use: cryptography's strict webpki verifier rejects
certificates those clients accept (a critical SAN with a non-empty subject, as trustme and
many private CAs issue), which would make the probe disagree with the users it stands for.

The failure class follows the order a human would fix things in: chain not reaching a trust
anchor (self-signed leaf, untrusted root, unknown CA, incomplete chain), then validity dates
over the whole path (expired, not yet valid), then the host name.

Untrusted CA vs incomplete chain cannot be told apart with certainty from the handshake alone
(OpenSSL reports both as "unable to get local issuer certificate"). The chain is called
*incomplete* when the server sent certificates that do not link to the leaf, or when the
top certificate carries an AIA caIssuers URL (public CAs always do; that is how browsers
fetch the missing intermediate and why such sites "work in the browser"). Otherwise the
issuer is reported as an untrusted CA.

OCSP stapling: the standard library `ssl` module can neither request the status_request
extension nor expose a stapled response, so `ocsp_stapled` stays false and
revoked-by-stapled-OCSP is not detected.
"""

from __future__ import annotations

import _ssl
import datetime as dt
import hashlib
import ipaddress
import ssl
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from probenet.v1.probe_pb2 import Certificate, FailureClass

_DER = _ssl.ENCODING_DER  # not exported by the public ssl module
_CACHE_TTL_S = 60.0
_CACHE_MAX = 1024
_MAX_PATH = 10
_SHA256 = hashes.SHA256()


@dataclass(frozen=True)
class ChainReport:
    """Everything learned from one presented chain for one server name and trust store."""

    chain: tuple[Certificate, ...]
    earliest_expiry: dt.datetime | None
    verify_class: FailureClass.ValueType
    verify_error: str

    @property
    def verified(self) -> bool:
        return self.verify_class == FailureClass.NONE


def presented_chain_der(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The certificates as the server sent them, leaf first, whatever their validity.

    Python 3.13 has SSLObject.get_unverified_chain(); on 3.11 the same method exists on the
    underlying _ssl object. Fallback: the leaf alone.
    """
    inner = getattr(ssl_object, "_sslobj", None)
    getter = getattr(ssl_object, "get_unverified_chain", None) or getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        certs = getter() or []
        if certs and isinstance(certs[0], bytes):
            return list(certs)
        return [c.public_bytes(_DER) for c in certs]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


class TrustAnchors:
    """A trust store (system bundle + a check's extra CAs) indexed for diagnosis."""

    def __init__(self, certs: Sequence[x509.Certificate]) -> None:
        self.fingerprints = {c.fingerprint(_SHA256) for c in certs}
        self.by_subject: dict[x509.Name, list[x509.Certificate]] = {}
        for cert in certs:
            self.by_subject.setdefault(cert.subject, []).append(cert)

    @classmethod
    def with_extra(cls, ca_pem: str) -> TrustAnchors:
        extra = _load_pem(ca_pem.encode()) if ca_pem else []
        return cls([*_system_roots(), *extra])


class ChainInspector:
    """Verifies presented chains with a small cache: the same server presents the same chain
    probe after probe, so parse + verify (~0.3 ms) is paid once a minute per chain, not per probe."""

    def __init__(self) -> None:
        self._anchors: dict[str, TrustAnchors] = {}
        self._cache: dict[tuple[tuple[bytes, ...], str, str], tuple[float, ChainReport]] = {}

    def anchors(self, ca_pem: str) -> TrustAnchors:
        anchors = self._anchors.get(ca_pem)
        if anchors is None:
            anchors = self._anchors[ca_pem] = TrustAnchors.with_extra(ca_pem)
        return anchors

    def inspect(self, chain_der: Sequence[bytes], server_name: str, ca_pem: str = "") -> ChainReport:
        key = (tuple(chain_der), server_name.lower(), ca_pem)
        now_mono = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now_mono:
            return hit[1]
        now = dt.datetime.now(dt.UTC)
        report = build_report(chain_der, server_name, self.anchors(ca_pem), now)
        ttl = _CACHE_TTL_S
        if report.earliest_expiry is not None:
            # A verdict must flip promptly when a certificate in the chain expires.
            ttl = max(0.0, min(ttl, (report.earliest_expiry - now).total_seconds()))
        if len(self._cache) >= _CACHE_MAX:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (now_mono + ttl, report)
        return report


def build_report(
    chain_der: Sequence[bytes], server_name: str, anchors: TrustAnchors, now: dt.datetime
) -> ChainReport:
    if not chain_der:
        return ChainReport((), None, FailureClass.TLS_HANDSHAKE, "server presented no certificate")
    certs = [x509.load_der_x509_certificate(der) for der in chain_der]
    protos = tuple(certificate_proto(cert, der) for cert, der in zip(certs, chain_der, strict=True))
    earliest = min(c.not_valid_after_utc for c in certs)
    verify_class, message = verify(certs, server_name, anchors, now)
    return ChainReport(protos, earliest, verify_class, message)


def verify(
    certs: Sequence[x509.Certificate], server_name: str, anchors: TrustAnchors, now: dt.datetime
) -> tuple[FailureClass.ValueType, str]:
    """Judge a presented chain; (NONE, "") when it is valid for server_name (module docstring)."""
    path, anchored = build_path(certs, anchors)
    leaf, top = path[0], path[-1]
    if not anchored:
        return _untrusted_reason(certs, path)
    for cert in path:
        if now > cert.not_valid_after_utc:
            return (
                FailureClass.TLS_CERT_EXPIRED,
                f"certificate {_name(cert.subject)} expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
            )
        if now < cert.not_valid_before_utc:
            return (
                FailureClass.TLS_CERT_NOT_YET_VALID,
                f"certificate {_name(cert.subject)} not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
            )
    for issuer in path[1:]:
        if not _is_ca(issuer) and issuer is not top:
            return FailureClass.TLS_UNTRUSTED, f"issuer {_name(issuer.subject)} is not a CA certificate"
    if not hostname_matches(leaf, server_name):
        return (
            FailureClass.TLS_HOSTNAME_MISMATCH,
            f"certificate is for {', '.join(_sans(leaf)) or _name(leaf.subject)}, not {server_name}",
        )
    return FailureClass.NONE, ""


def build_path(
    certs: Sequence[x509.Certificate], anchors: TrustAnchors
) -> tuple[list[x509.Certificate], bool]:
    """Leaf first, each next certificate the verified signer of the previous one, taken from the
    presented certificates or the trust anchors; True when the path reaches a trust anchor."""
    path = [certs[0]]
    pool = list(certs[1:])
    for _ in range(_MAX_PATH):
        current = path[-1]
        if current.fingerprint(_SHA256) in anchors.fingerprints:
            return path, True
        anchor = next((a for a in anchors.by_subject.get(current.issuer, ()) if _issued_by(current, a)), None)
        if anchor is not None:
            return [*path, anchor], True
        if _self_issued(current):
            return path, False
        parent = next((c for c in pool if c.subject == current.issuer and _issued_by(current, c)), None)
        if parent is None:
            return path, False
        pool.remove(parent)
        path.append(parent)
    return path, False


def _untrusted_reason(
    certs: Sequence[x509.Certificate], path: Sequence[x509.Certificate]
) -> tuple[FailureClass.ValueType, str]:
    top = path[-1]
    if _self_issued(top):
        if len(path) == 1:
            return FailureClass.TLS_SELF_SIGNED, f"self-signed certificate {_name(top.subject)}"
        return FailureClass.TLS_UNTRUSTED, f"chain ends at untrusted root {_name(top.subject)}"
    if (len(path) == 1 and len(certs) > 1) or _has_ca_issuers_url(top):
        return (
            FailureClass.TLS_INCOMPLETE_CHAIN,
            f"incomplete chain: issuer {_name(top.issuer)} of {_name(top.subject)} was not sent by the server",
        )
    return FailureClass.TLS_UNTRUSTED, f"unknown CA {_name(top.issuer)}"


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def hostname_matches(cert: x509.Certificate, server_name: str) -> bool:
    """RFC 6125 matching on subjectAltName only (no CN fallback), one left-most wildcard label."""
    try:
        ip = ipaddress.ip_address(server_name)
    except ValueError:
        ip = None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if ip is not None:
        return ip in san.get_values_for_type(x509.IPAddress)
    name = server_name.lower().rstrip(".")
    for raw in san.get_values_for_type(x509.DNSName):
        pattern = raw.lower().rstrip(".")
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def certificate_proto(cert: x509.Certificate, der: bytes) -> Certificate:
    proto = Certificate(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=_sans(cert),
        serial=format(cert.serial_number, "x"),
        sha256_fingerprint=hashlib.sha256(der).hexdigest(),
        is_ca=_is_ca(cert),
        key_type=_key_type(cert),
    )
    proto.not_before.FromDatetime(cert.not_valid_before_utc)
    proto.not_after.FromDatetime(cert.not_valid_after_utc)
    return proto


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


def _has_ca_issuers_url(cert: x509.Certificate) -> bool:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return False
    return any(d.access_method == AuthorityInformationAccessOID.CA_ISSUERS for d in aia)


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [
        *san.get_values_for_type(x509.DNSName),
        *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
    ]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _key_type(cert: x509.Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC-{key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA-{key.key_size}"
    return type(key).__name__


def _name(name: x509.Name) -> str:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else name.rfc4514_string()


def _load_pem(data: bytes) -> list[x509.Certificate]:
    with warnings.catch_warnings():
        # Some long-lived public roots have non-positive serials; they still anchor chains.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError:
            return _load_pem_one_by_one(data)


def _load_pem_one_by_one(data: bytes) -> list[x509.Certificate]:
    marker = b"-----END CERTIFICATE-----"
    certs = []
    for block in data.split(marker):
        if b"-----BEGIN CERTIFICATE-----" not in block:
            continue
        try:
            certs.append(x509.load_pem_x509_certificate(block + marker))
        except ValueError:
            continue
    return certs


@cache
def _system_roots() -> tuple[x509.Certificate, ...]:
    """The roots OpenSSL would use by default, else certifi's bundle; read once per process."""
    paths = ssl.get_default_verify_paths()
    for candidate in _candidate_bundles(paths.cafile, paths.openssl_cafile):
        if candidate.is_file():
            return tuple(_load_pem(candidate.read_bytes()))
    return ()


def _candidate_bundles(*files: str | None) -> Iterable[Path]:
    yield from (Path(f) for f in files if f)
    try:
        import certifi
    except ImportError:
        return
    yield Path(certifi.where())
