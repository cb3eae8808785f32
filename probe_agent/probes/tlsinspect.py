"""Pure TLS helpers: read the presented chain, judge it with pyca's verifier, name what is wrong.

Why verify after the handshake instead of inside it: OpenSSL aborts a handshake whose
verification fails, and the presented chain is lost with it (blackbox_exporter #1119: no
certificate data exactly when a certificate expires). So the handshake runs with verification
off (one context, built once), the chain is read from the connection (`_sslobj.
get_unverified_chain()`, public only from Python 3.13), and `judge_chain` judges it against the
trust store (the system bundle plus the check's own CAs). The caller sends nothing over a
connection whose chain failed verification (unless the check says insecure). One handshake
per probe; the verdict for a given chain is cached for a minute (bounded by its expiry).

**Whether a chain is valid is decided by pyca's `cryptography.x509.verification` only**: RFC
5280 path building with backtracking (cross-signed roots, self-issued key-rollover
certificates), name constraints, EKU serverAuth, pathLen, unknown critical extensions, host
name matching. It scored best of the verifiers measured on a public path-validation suite
(99.6 %, OpenSSL as curl uses it 97.5 %), it judges a chain given as bytes with no handshake,
and it needs no new dependency. Its extension policy is webpki's (CA/B Forum) with
`RELAXATIONS`: only rules whose breach curl (OpenSSL) and browsers both accept, each named
there and tested. What stays stricter than OpenSSL, as in browsers: X.509 v1 certificates,
SHA-1 and Ed25519 signatures, RSA keys under 2048 bits, a CA certificate used as the leaf
(unless it is itself the pinned trust anchor).

The failure class, once the verifier said no, follows the order a human would fix things in:
a certificate that cannot be parsed (`tls_cert_malformed`; its readable fields are kept), the
chain not reaching a trust anchor (self-signed leaf, untrusted root, unknown CA, incomplete
chain, or a path the verifier refused: EKU, name constraints, pathLen, critical extensions),
then validity dates (expired, not yet valid), then the host name. The class is found by
asking the verifier again with one condition lifted: without the host name (a pass means a
host name mismatch), at another instant inside the presented certificates' validity (a pass
means a date problem, named on the path the verifier returned). Only when neither passes does
a short walk over issuer names (`_walk`) tell the untrusted cases apart; it never decides
validity.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    Subject,
    VerificationError,
)

from probenet.v1.probe_pb2 import Certificate, FailureClass

_DER = _ssl.ENCODING_DER  # not exported by the public ssl module
_CACHE_TTL_S = 60.0
_CACHE_MAX = 1024
_MAX_WALK = 10
# A hostile server may send hundreds of certificates: the verifier sees the first few (real
# chains have at most 3 or 4 intermediates), and the diagnosis retries a few instants only.
_MAX_INTERMEDIATES = 10
_MAX_INSTANTS = 6
_SHA256 = hashes.SHA256()
_ONE_SECOND = dt.timedelta(seconds=1)
_T = TypeVar("_T")
# What cryptography raises for a certificate, or a part of one, it cannot decode.
_UNPARSEABLE = (
    ValueError,
    TypeError,  # e.g. a name attribute of a type its OID does not allow
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)

# Where the verifier's webpki profile is stricter than both OpenSSL (curl) and browsers, it is
# relaxed here, and only here. Each entry is tested (tests/probe_agent/probes/test_tlsverify.py).
RELAXATIONS: dict[str, str] = {
    "ee_san_criticality": "a leaf's subjectAltName may be critical although its subject is not "
    "empty (trustme and many private CAs issue such leaves)",
    "ee_eku_criticality": "a leaf's extendedKeyUsage may be critical (trustme); it must still "
    "contain serverAuth",
    "ee_aki_optional": "a leaf may lack authorityKeyIdentifier (leaves signed with `openssl x509 "
    "-req` and a minimal extfile)",
    "ca_key_usage_optional": "a CA may lack keyUsage (absent means any usage in RFC 5280; the Go "
    "Daddy and Starfield Class 2 and Chunghwa ePKI roots in the system bundle have none); when "
    "present it must still assert keyCertSign",
    "ee_pinned_ca_leaf": "a leaf that is itself a trust anchor (pinned as the check's CA) may "
    "assert cA and keyCertSign, as `openssl req -x509` makes it; any other leaf may not",
    "ca_basic_constraints_noncritical": "a CA's basicConstraints may be non-critical (the same three "
    "roots); it must still assert cA, and pathLen still holds",
}


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


def judge_chain(
    chain_der: Sequence[bytes], server_name: str, trusted_pem: bytes, at: dt.datetime
) -> ChainReport:
    """The verdict on a presented chain (leaf first) for server_name, trusting the certificates
    in trusted_pem, at instant `at` (UTC when naive). Pure; what the probes use (contract,
    DESIGN §2)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    if not chain_der:
        return ChainReport((), None, FailureClass.TLS_HANDSHAKE, "server presented no certificate")
    with warnings.catch_warnings():
        # Whatever a server's certificates hold (a non-positive serial, a 17-letter country
        # name) is judged and reported here, not repeated in the agent's log on every probe.
        warnings.simplefilter("ignore")
        parsed = [_parse(der, index) for index, der in enumerate(chain_der)]
        certs = [p.cert for p in parsed if p.cert is not None]
        earliest = min((c.not_valid_after_utc for c in certs), default=None)
        verify_class, message = _judge(parsed, server_name, _trust(trusted_pem), at)
    return ChainReport(tuple(p.proto for p in parsed), earliest, verify_class, message)


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


class ChainInspector:
    """Judges presented chains with a small cache: the same server presents the same chain
    probe after probe, so the verdict is paid once a minute per chain, not per probe."""

    def __init__(self) -> None:
        self._trusted: dict[str, bytes] = {}
        self._cache: dict[tuple[tuple[bytes, ...], str, str], tuple[float, ChainReport]] = {}

    def anchors(self, ca_pem: str) -> bytes:
        """The trust store for a check (system bundle + its CAs) as PEM, parsed on first use."""
        trusted = self._trusted.get(ca_pem)
        if trusted is None:
            trusted = self._trusted[ca_pem] = _system_roots_pem() + b"\n" + ca_pem.encode()
            _trust(trusted)
        return trusted

    def inspect(self, chain_der: Sequence[bytes], server_name: str, ca_pem: str = "") -> ChainReport:
        key = (tuple(chain_der), server_name.lower(), ca_pem)
        now_mono = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now_mono:
            return hit[1]
        now = dt.datetime.now(dt.UTC)
        report = judge_chain(chain_der, server_name, self.anchors(ca_pem), now)
        ttl = _CACHE_TTL_S
        if report.earliest_expiry is not None:
            # A verdict must flip promptly when a certificate in the chain expires.
            ttl = max(0.0, min(ttl, (report.earliest_expiry - now).total_seconds()))
        if len(self._cache) >= _CACHE_MAX:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (now_mono + ttl, report)
        return report


# --- parsing: every readable field, and why a certificate cannot be judged -----------------


@dataclass(frozen=True)
class _Parsed:
    cert: x509.Certificate | None
    proto: Certificate
    problem: str  # why this certificate cannot be judged; "" when it can


def _parse(der: bytes, index: int) -> _Parsed:
    proto = Certificate(sha256_fingerprint=hashlib.sha256(der).hexdigest())
    try:
        cert = x509.load_der_x509_certificate(der)
    except _UNPARSEABLE as exc:
        return _Parsed(None, proto, f"certificate {index} cannot be parsed: {exc}")
    problems: list[str] = []
    # Lambdas on purpose: the attribute access itself is what may raise (parsed lazily).
    proto.subject = _read(problems, "subject", lambda: cert.subject.rfc4514_string(), "")  # noqa: PLW0108
    proto.issuer = _read(problems, "issuer", lambda: cert.issuer.rfc4514_string(), "")  # noqa: PLW0108
    proto.serial = _read(problems, "serial", lambda: format(cert.serial_number, "x"), "")
    proto.not_before.FromDatetime(cert.not_valid_before_utc)
    proto.not_after.FromDatetime(cert.not_valid_after_utc)
    proto.key_type = _key_type(cert)
    if _read(problems, "extensions", lambda: cert.extensions, None) is not None:
        proto.sans.extend(_sans(cert))
        proto.is_ca = _is_ca(cert)
    problem = (
        f"certificate {index} ({proto.subject or proto.sha256_fingerprint}): {problems[0]}"
        if problems
        else ""
    )
    return _Parsed(cert, proto, problem)


def _read(problems: list[str], what: str, read: Callable[[], _T], default: _T) -> _T:
    """One field of a certificate that cryptography parses lazily; its error kept, not raised."""
    try:
        return read()
    except _UNPARSEABLE as exc:
        problems.append(f"{what} cannot be parsed: {exc}")
        return default


# --- judgement -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Trust:
    store: Store | None  # None: no usable trust anchor at all
    fingerprints: frozenset[bytes]
    by_subject: dict[x509.Name, list[x509.Certificate]]
    ee_server: ExtensionPolicy  # what a leaf must be, judged for a host name
    ee_diagnosis: ExtensionPolicy  # the same, with no host name to match


@lru_cache(maxsize=64)
def _trust(trusted_pem: bytes) -> _Trust:
    certs = _load_pem(trusted_pem)
    by_subject: dict[x509.Name, list[x509.Certificate]] = {}
    for cert in certs:
        by_subject.setdefault(cert.subject, []).append(cert)
    fingerprints = frozenset(c.fingerprint(_SHA256) for c in certs)
    store = Store(certs) if certs else None
    return _Trust(
        store, fingerprints, by_subject, _ee_policy(fingerprints, False), _ee_policy(fingerprints, True)
    )


@dataclass(frozen=True)
class _Case:
    """One chain to judge: what the verifier is asked, again, while diagnosing a refusal."""

    leaf: x509.Certificate
    intermediates: list[x509.Certificate]
    trust: _Trust
    at: dt.datetime


def _judge(
    parsed: Sequence[_Parsed], server_name: str, trust: _Trust, at: dt.datetime
) -> tuple[FailureClass.ValueType, str]:
    leaf = parsed[0].cert
    if leaf is None or parsed[0].problem:
        return FailureClass.TLS_CERT_MALFORMED, parsed[0].problem
    intermediates = [p.cert for p in parsed[1:] if p.cert is not None][:_MAX_INTERMEDIATES]
    case = _Case(leaf, intermediates, trust, at)
    subject = _subject(server_name)
    if trust.store is not None and subject is not None:
        try:
            _server_verifier(trust.store, trust.ee_server, subject, at).verify(leaf, case.intermediates)
            return FailureClass.NONE, ""
        except VerificationError as exc:
            refusal = str(exc)
    else:
        refusal = "no trust anchor" if trust.store is None else f"{server_name!r} is not a valid host name"
    malformed = next((p.problem for p in parsed if p.problem), "")
    if malformed:
        # The path may have needed that certificate; nothing more can be said for sure.
        return FailureClass.TLS_CERT_MALFORMED, malformed
    return _diagnose(case, server_name) or _untrusted_reason(case, refusal)


def _diagnose(case: _Case, server_name: str) -> tuple[FailureClass.ValueType, str] | None:
    """Why the verifier refused, asked of the verifier itself with one condition lifted:
    the host name, then the instant."""
    store = case.trust.store
    if store is None:
        return None
    if _anchored_path(store, case, case.at) is not None:
        sans = ", ".join(_sans(case.leaf)) or _name(case.leaf.subject)
        return FailureClass.TLS_HOSTNAME_MISMATCH, f"certificate is for {sans}, not {server_name}"
    for instant in _other_instants([case.leaf, *case.intermediates], case.at):
        dated = _date_problem(_anchored_path(store, case, instant) or (), case.at)
        if dated is not None:
            return dated
    return None


def _untrusted_reason(case: _Case, refusal: str) -> tuple[FailureClass.ValueType, str]:
    path, anchored = _walk(case)
    top = path[-1]
    if anchored:
        # Linked to an anchor yet refused: a date no single instant satisfies, or a rule.
        return _date_problem(path, case.at) or (FailureClass.TLS_UNTRUSTED, f"chain refused: {refusal}")
    if _self_issued(top):
        if len(path) == 1:
            return FailureClass.TLS_SELF_SIGNED, f"self-signed certificate {_name(top.subject)}"
        return FailureClass.TLS_UNTRUSTED, f"chain ends at untrusted root {_name(top.subject)}"
    if (len(path) == 1 and case.intermediates) or _has_ca_issuers_url(top):
        return (
            FailureClass.TLS_INCOMPLETE_CHAIN,
            f"incomplete chain: issuer {_name(top.issuer)} of {_name(top.subject)} was not sent by the server",
        )
    return FailureClass.TLS_UNTRUSTED, f"unknown CA {_name(top.issuer)}"


def _walk(case: _Case) -> tuple[list[x509.Certificate], bool]:
    """Diagnosis only, after the verifier refused: follow signed issuer links from the leaf
    through the presented certificates; True when one reaches a trust anchor."""
    path, pool, trust = [case.leaf], list(case.intermediates), case.trust
    for _ in range(_MAX_WALK):
        current = path[-1]
        if current.fingerprint(_SHA256) in trust.fingerprints:
            return path, True
        anchor = next((a for a in trust.by_subject.get(current.issuer, ()) if _issued_by(current, a)), None)
        if anchor is not None:
            return [*path, anchor], True
        parent = next((c for c in pool if c.subject == current.issuer and _issued_by(current, c)), None)
        if parent is None:
            return path, False
        pool.remove(parent)
        path.append(parent)
    return path, False


def _date_problem(
    path: Iterable[x509.Certificate], at: dt.datetime
) -> tuple[FailureClass.ValueType, str] | None:
    for cert in path:
        if at > cert.not_valid_after_utc:
            return (
                FailureClass.TLS_CERT_EXPIRED,
                f"certificate {_name(cert.subject)} expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}",
            )
        if at < cert.not_valid_before_utc:
            return (
                FailureClass.TLS_CERT_NOT_YET_VALID,
                f"certificate {_name(cert.subject)} not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}",
            )
    return None


def _other_instants(certs: Sequence[x509.Certificate], at: dt.datetime) -> list[dt.datetime]:
    """Instants at the edges of each certificate's validity, nearest to `at` first: if the
    chain is good at one of them, only dates are wrong at `at`."""
    edges = {c.not_valid_before_utc + _ONE_SECOND for c in certs} | {
        c.not_valid_after_utc - _ONE_SECOND for c in certs
    }
    edges.discard(at)
    return sorted(edges, key=lambda t: abs((t - at).total_seconds()))[:_MAX_INSTANTS]


# --- the verifier and its policy -----------------------------------------------------------


def _subject(server_name: str) -> Subject | None:
    name = server_name.strip("[]").rstrip(".").lower()
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        return x509.DNSName(name) if name else None
    except ValueError:
        return None


def _server_verifier(
    store: Store, ee_policy: ExtensionPolicy, subject: Subject, at: dt.datetime
) -> x509.verification.ServerVerifier:
    builder = _builder(store, at).extension_policies(ca_policy=_ca_policy(), ee_policy=ee_policy)
    try:
        return builder.build_server_verifier(subject)
    except ValueError as exc:  # a name the verifier cannot express (e.g. an underscore)
        raise VerificationError(f"cannot verify for {subject.value}: {exc}") from exc


def _anchored_path(store: Store, case: _Case, at: dt.datetime) -> list[x509.Certificate] | None:
    """The path the verifier accepts at `at` without a host name to match, or None."""
    builder = _builder(store, at).extension_policies(
        ca_policy=_ca_policy(), ee_policy=case.trust.ee_diagnosis
    )
    try:
        return builder.build_client_verifier().verify(case.leaf, case.intermediates).chain
    except VerificationError:
        return None


def _builder(store: Store, at: dt.datetime) -> PolicyBuilder:
    return PolicyBuilder().store(store).time(at)


def _ee_policy(pinned: frozenset[bytes], diagnosis: bool) -> ExtensionPolicy:
    leaf_is_ca, leaf_signs_certs = _unless_pinned(pinned)
    policy = (
        ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(
            x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_server_auth
        )  # ee_eku_criticality
        .may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None)  # ee_aki_optional
        .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, leaf_is_ca)  # ee_pinned_ca_leaf
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, leaf_signs_certs)  # ee_pinned_ca_leaf
    )
    if diagnosis:  # no host name to match: the SAN is not needed
        return policy.may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    # ee_san_criticality; the verifier still matches the host name against it.
    return policy.require_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)


def _unless_pinned(
    pinned: frozenset[bytes],
) -> tuple[
    Callable[[Policy, x509.Certificate, x509.BasicConstraints | None], None],
    Callable[[Policy, x509.Certificate, x509.KeyUsage | None], None],
]:
    """webpki's rules that a leaf is no CA, waived for a leaf that is itself a trust anchor
    (`openssl req -x509` makes a CA:TRUE certificate, pinned as the check's CA)."""

    def leaf_is_ca(_policy: Policy, cert: x509.Certificate, bc: x509.BasicConstraints | None) -> None:
        if bc is not None and bc.ca and cert.fingerprint(_SHA256) not in pinned:
            raise VerificationError("a CA certificate (basicConstraints cA) presented as the server's")

    def leaf_signs_certs(_policy: Policy, cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
        if usage is not None and usage.key_cert_sign and cert.fingerprint(_SHA256) not in pinned:
            raise VerificationError("the server's certificate asserts keyCertSign")

    return leaf_is_ca, leaf_signs_certs


@cache
def _ca_policy() -> ExtensionPolicy:
    return (
        ExtensionPolicy.webpki_defaults_ca()
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _require_key_cert_sign)  # ca_key_usage_optional
        .require_present(
            x509.BasicConstraints, Criticality.AGNOSTIC, _require_ca
        )  # ca_basic_constraints_noncritical
        # webpki's own rule for a server verifier, stated so that the client-mode verifier of the
        # diagnosis asks the same of an intermediate (and not clientAuth).
        .may_be_present(x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, _ca_allows_server_auth)
    )


def _require_server_auth(_policy: Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    # Explicit, as the client-mode verifier used for diagnosis would otherwise ask for clientAuth.
    if eku is not None and ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        raise VerificationError("extendedKeyUsage lacks serverAuth")


def _ca_allows_server_auth(
    _policy: Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None
) -> None:
    if eku is not None and not {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    } & set(eku):
        raise VerificationError("extendedKeyUsage of a CA allows neither serverAuth nor any usage")


def _require_ca(_policy: Policy, _cert: x509.Certificate, constraints: x509.BasicConstraints) -> None:
    # pathLen is enforced by the verifier itself, outside the extension policy.
    if not constraints.ca:
        raise VerificationError("basicConstraints of an issuer does not assert cA")


def _require_key_cert_sign(_policy: Policy, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is not None and not usage.key_cert_sign:
        raise VerificationError("keyUsage of a CA lacks keyCertSign")


# --- certificate details -------------------------------------------------------------------


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


def _has_ca_issuers_url(cert: x509.Certificate) -> bool:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, *_UNPARSEABLE):
        return False
    return any(d.access_method == AuthorityInformationAccessOID.CA_ISSUERS for d in aia)


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, *_UNPARSEABLE):
        return []
    return [
        *san.get_values_for_type(x509.DNSName),
        *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
    ]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, *_UNPARSEABLE):
        return False


def _key_type(cert: x509.Certificate) -> str:
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, *_UNPARSEABLE):
        return "unsupported"
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


# --- trust store ---------------------------------------------------------------------------


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
def _system_roots_pem() -> bytes:
    """The roots OpenSSL would use by default, else certifi's bundle; read once per process."""
    paths = ssl.get_default_verify_paths()
    for candidate in _candidate_bundles(paths.cafile, paths.openssl_cafile):
        if candidate.is_file():
            return candidate.read_bytes()
    return b""


def _candidate_bundles(*files: str | None) -> Iterable[Path]:
    yield from (Path(f) for f in files if f)
    try:
        import certifi
    except ImportError:
        return
    yield Path(certifi.where())
