"""judge_chain's verifier on chains built here: paths, constraints, malformed certificates, relaxations.

Every certificate is made in the test with cryptography's builder; `_Ca.issue` takes the
extensions explicitly so each case changes exactly one thing from the ordinary profile.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe_agent.probes.tlsinspect import RELAXATIONS, judge_chain
from probenet.v1.probe_pb2 import FailureClass

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
Ext = tuple[x509.ExtensionType, bool]  # (value, critical)
SAN_OID = ObjectIdentifier("2.5.29.17")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca_usage(key_cert_sign: bool = True) -> x509.KeyUsage:
    return x509.KeyUsage(True, False, False, False, False, key_cert_sign, True, False, False)


def _sign(  # noqa: PLR0917 - the fields of a certificate, in their order
    cn: str,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    extensions: Sequence[Ext],
    validity: tuple[dt.datetime, dt.datetime],
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
    )
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class _Ca:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def issue(
        self,
        cn: str,
        extensions: Sequence[Ext],
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        not_before: dt.datetime = NOW - 30 * DAY,
        not_after: dt.datetime = NOW + 365 * DAY,
    ) -> _Ca:
        """A certificate for cn signed by this CA, carrying exactly `extensions`."""
        key = key or _key()
        return _Ca(_sign(cn, self.cert.subject, key, self.key, extensions, (not_before, not_after)), key)

    def ca(
        self,
        cn: str,
        *,
        path_length: int | None = None,
        extra: Sequence[Ext] = (),
        key: ec.EllipticCurvePrivateKey | None = None,
        not_before: dt.datetime = NOW - 30 * DAY,
        not_after: dt.datetime = NOW + 365 * DAY,
    ) -> _Ca:
        key = key or _key()
        extensions = [*_ca_profile(key, self.key, path_length), *extra]
        return self.issue(cn, extensions, key=key, not_before=not_before, not_after=not_after)

    def leaf(self, *hosts: str, eku: list[ObjectIdentifier] | None = None, extra: Sequence[Ext] = ()) -> _Ca:
        key = _key()
        extensions = _leaf_profile(key, self.key, hosts)
        if eku is not None:
            extensions = [e for e in extensions if not isinstance(e[0], x509.ExtendedKeyUsage)]
            if eku:
                extensions.append((x509.ExtendedKeyUsage(eku), False))
        return self.issue(hosts[0], [*extensions, *extra], key=key)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _ca_profile(
    key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey, path_length: int | None
) -> list[Ext]:
    return [
        (x509.BasicConstraints(ca=True, path_length=path_length), True),
        (_ca_usage(), True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False),
    ]


def _leaf_profile(
    key: ec.EllipticCurvePrivateKey, issuer_key: ec.EllipticCurvePrivateKey, hosts: tuple[str, ...]
) -> list[Ext]:
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False),
    ]


def root(
    cn: str,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
    not_before: dt.datetime = NOW - 30 * DAY,
    not_after: dt.datetime = NOW + 3650 * DAY,
) -> _Ca:
    key = key or _key()
    extensions = _ca_profile(key, key, None)
    return _Ca(_sign(cn, _name(cn), key, key, extensions, (not_before, not_after)), key)


def judge(chain: list[_Ca | bytes], name: str, *anchors: _Ca) -> FailureClass.ValueType:
    ders = [c if isinstance(c, bytes) else c.der for c in chain]
    report = judge_chain(ders, name, b"".join(a.pem for a in anchors), NOW)
    assert report.verified == (report.verify_class == FailureClass.NONE)
    return report.verify_class


# --- path building --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def letsencrypt_like() -> dict[str, _Ca]:
    """ISRG Root X1 self-signed and cross-signed by an expired DST Root CA X3, as in 2021."""
    dst = root("DST Root CA X3", not_before=NOW - 3000 * DAY, not_after=NOW - 60 * DAY)
    x1_key = _key()
    x1 = root("ISRG Root X1", key=x1_key)
    x1_by_dst = dst.ca("ISRG Root X1", key=x1_key, not_before=NOW - 2000 * DAY, not_after=NOW + 300 * DAY)
    r3 = x1.ca("R3", path_length=0)
    return {"dst": dst, "x1": x1, "x1_by_dst": x1_by_dst, "r3": r3, "leaf": r3.leaf("a.test")}


def test_cross_signed_root_path_avoids_the_expired_dst_cross_sign(letsencrypt_like: dict[str, _Ca]) -> None:
    c = letsencrypt_like
    chain = [c["leaf"], c["r3"], c["x1_by_dst"]]  # what Let's Encrypt servers sent until 2024
    assert judge(chain, "a.test", c["dst"], c["x1"]) == FailureClass.NONE
    # A store with only the expired root: the cross-signed path is the only one, and it is expired.
    assert judge(chain, "a.test", c["dst"]) == FailureClass.TLS_CERT_EXPIRED


def test_path_building_backtracks_to_the_second_cross_sign(letsencrypt_like: dict[str, _Ca]) -> None:
    c = letsencrypt_like
    other = root("Other Root")
    x1_by_other = other.ca("ISRG Root X1", key=c["x1"].key)
    # The dead end (to the expired DST) comes first; a greedy builder stops there.
    chain = [c["leaf"], c["r3"], c["x1_by_dst"], x1_by_other]
    assert judge(chain, "a.test", c["dst"], other) == FailureClass.NONE


def test_self_issued_key_rollover_certificate_links_old_and_new_keys() -> None:
    old = root("Rollover Root")
    new_key = _key()
    new_by_old = old.ca("Rollover Root", key=new_key)  # subject == issuer, different keys
    new = _Ca(new_by_old.cert, new_key)
    intermediate = new.ca("Rollover Intermediate")
    leaf = intermediate.leaf("a.test")
    assert judge([leaf, intermediate, new_by_old], "a.test", old) == FailureClass.NONE
    assert judge([leaf, intermediate], "a.test", old) == FailureClass.TLS_UNTRUSTED


# --- constraints ----------------------------------------------------------------------------


def test_name_constraints_permitted_and_excluded() -> None:
    anchor = root("Constrained Root")
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("shop.test")], excluded_subtrees=[x509.DNSName("bad.shop.test")]
    )
    intermediate = anchor.ca("Constrained Intermediate", extra=[(constraints, True)])
    for host, expected in [
        ("www.shop.test", FailureClass.NONE),
        ("evil.test", FailureClass.TLS_UNTRUSTED),
        ("x.bad.shop.test", FailureClass.TLS_UNTRUSTED),
    ]:
        assert judge([intermediate.leaf(host), intermediate], host, anchor) == expected, host


def test_eku_server_auth_is_required_when_an_eku_is_present() -> None:
    anchor = root("EKU Root")
    client_only = anchor.leaf("a.test", eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    assert judge([client_only], "a.test", anchor) == FailureClass.TLS_UNTRUSTED
    both = anchor.leaf("a.test", eku=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH])
    assert judge([both], "a.test", anchor) == FailureClass.NONE
    assert judge([anchor.leaf("a.test", eku=[])], "a.test", anchor) == FailureClass.NONE  # absent: any


def test_path_length_constraint() -> None:
    anchor = root("PathLen Root")
    for path_length, expected in [(0, FailureClass.TLS_UNTRUSTED), (1, FailureClass.NONE)]:
        upper = anchor.ca("Upper", path_length=path_length)
        lower = upper.ca("Lower")
        assert judge([lower.leaf("a.test"), lower, upper], "a.test", anchor) == expected


def test_unknown_critical_extension_is_refused_and_non_critical_ignored() -> None:
    anchor = root("Ext Root")
    unknown = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    assert (
        judge([anchor.leaf("a.test", extra=[(unknown, True)])], "a.test", anchor)
        == FailureClass.TLS_UNTRUSTED
    )
    assert judge([anchor.leaf("a.test", extra=[(unknown, False)])], "a.test", anchor) == FailureClass.NONE
    intermediate = anchor.ca("Ext Intermediate", extra=[(unknown, True)])
    assert judge([intermediate.leaf("a.test"), intermediate], "a.test", anchor) == FailureClass.TLS_UNTRUSTED


def test_leaf_with_ca_flag_is_refused_unless_pinned() -> None:
    anchor = root("CA Leaf Root")
    ca_leaf = anchor.ca("a.test", extra=[(x509.SubjectAlternativeName([x509.DNSName("a.test")]), False)])
    assert judge([ca_leaf], "a.test", anchor) == FailureClass.TLS_UNTRUSTED
    assert judge([ca_leaf], "a.test", anchor, ca_leaf) == FailureClass.NONE  # the check pins it
    [self_signed], _ = _openssl_req_x509("a.test")
    assert judge([self_signed], "a.test") == FailureClass.TLS_SELF_SIGNED
    assert judge([self_signed], "b.test", self_signed) == FailureClass.TLS_HOSTNAME_MISMATCH


# --- malformed certificates -----------------------------------------------------------------


def _bad_san_leaf(anchor: _Ca) -> _Ca:
    # A SAN whose GeneralName claims 5 bytes but holds 1: cryptography cannot decode it.
    bad_san = x509.UnrecognizedExtension(SAN_OID, b"\x30\x03\x82\x05a")
    key = _key()
    profile = [
        e
        for e in _leaf_profile(key, anchor.key, ("a.test",))
        if not isinstance(e[0], x509.SubjectAlternativeName)
    ]
    return anchor.issue("a.test", [*profile, (bad_san, False)], key=key)


def test_undecodable_extension_is_malformed_with_every_readable_field() -> None:
    anchor = root("Malformed Root")
    leaf = _bad_san_leaf(anchor)
    with pytest.raises(ValueError, match="subject_alternative_name"):
        _ = leaf.cert.extensions
    report = judge_chain([leaf.der], "a.test", anchor.pem, NOW)
    assert report.verify_class == FailureClass.TLS_CERT_MALFORMED
    assert "certificate 0" in report.verify_error and "extensions cannot be parsed" in report.verify_error
    cert = report.chain[0]
    assert cert.sha256_fingerprint == hashlib.sha256(leaf.der).hexdigest()
    assert cert.subject == "CN=a.test"
    assert cert.issuer == "CN=Malformed Root"
    assert cert.serial == format(leaf.cert.serial_number, "x")
    assert cert.not_after.ToDatetime(dt.UTC) == leaf.cert.not_valid_after_utc
    assert cert.key_type == "EC-secp256r1"
    assert report.earliest_expiry == leaf.cert.not_valid_after_utc


def test_undecodable_der_is_malformed_with_its_fingerprint() -> None:
    anchor = root("Truncated Root")
    truncated = anchor.leaf("a.test").der[:-20]
    report = judge_chain([truncated], "a.test", anchor.pem, NOW)
    assert report.verify_class == FailureClass.TLS_CERT_MALFORMED
    assert report.chain[0].sha256_fingerprint == hashlib.sha256(truncated).hexdigest()
    assert report.earliest_expiry is None


def test_malformed_extra_certificate_does_not_hide_a_valid_path() -> None:
    anchor = root("Extra Root")
    intermediate = anchor.ca("Extra Intermediate")
    chain = [intermediate.leaf("a.test"), intermediate, b"\x30\x03\x02\x01\x00", _bad_san_leaf(anchor)]
    assert judge(chain, "a.test", anchor) == FailureClass.NONE
    # When the path is refused, a certificate that could not be read is what gets reported.
    assert judge(chain, "a.test", root("Unrelated Root")) == FailureClass.TLS_CERT_MALFORMED


# --- the six specific classes, decided by asking the verifier again --------------------------


def test_specific_classes_follow_the_fixing_order() -> None:
    anchor = root("Order Root")
    intermediate = anchor.ca("Order Intermediate")
    expired = intermediate.issue(
        "a.test",
        _leaf_profile(_key(), intermediate.key, ("a.test",)),
        not_before=NOW - 90 * DAY,
        not_after=NOW - DAY,
    )
    # Expired and for another name: the date is named first, as the trust would be.
    assert judge([expired, intermediate], "b.test", anchor) == FailureClass.TLS_CERT_EXPIRED
    assert judge([expired, intermediate], "a.test", root("Stranger")) == FailureClass.TLS_UNTRUSTED
    assert (
        judge([intermediate.leaf("a.test"), intermediate], "b.test", anchor)
        == FailureClass.TLS_HOSTNAME_MISMATCH
    )
    expired_root = root("Expired Root", not_before=NOW - 90 * DAY, not_after=NOW - DAY)
    old_leaf = expired_root.issue(
        "a.test",
        _leaf_profile(_key(), expired_root.key, ("a.test",)),
        not_before=NOW - 80 * DAY,
    )
    assert judge([old_leaf], "a.test", expired_root) == FailureClass.TLS_CERT_EXPIRED


def test_naive_instant_is_taken_as_utc() -> None:
    anchor = root("Naive Root")
    leaf = anchor.leaf("a.test")
    naive = NOW.replace(tzinfo=None)
    assert judge_chain([leaf.der], "a.test", anchor.pem, naive).verified
    later = naive + 400 * DAY
    assert judge_chain([leaf.der], "a.test", anchor.pem, later).verify_class == FailureClass.TLS_CERT_EXPIRED


def test_ip_address_names_are_matched_as_addresses() -> None:
    anchor = root("IP Root")
    key = _key()
    profile = [
        e for e in _leaf_profile(key, anchor.key, ("x",)) if not isinstance(e[0], x509.SubjectAlternativeName)
    ]
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("::1"))])
    leaf = anchor.issue("ip", [*profile, (san, False)], key=key)
    assert judge([leaf], "[::1]", anchor) == FailureClass.NONE
    assert judge([leaf], "127.0.0.1", anchor) == FailureClass.TLS_HOSTNAME_MISMATCH


# --- relaxations: each one refused by strict webpki, accepted by OpenSSL, browsers and us -----


def _no_aki(exts: list[Ext]) -> list[Ext]:
    return [e for e in exts if not isinstance(e[0], x509.AuthorityKeyIdentifier)]


def _relaxed_leaf(transform: Callable[[list[Ext]], list[Ext]]) -> tuple[list[_Ca], _Ca]:
    anchor = root("Relaxed Root")
    key = _key()
    return [anchor.issue("a.test", transform(_leaf_profile(key, anchor.key, ("a.test",))), key=key)], anchor


def _relaxed_ca(transform: Callable[[list[Ext]], list[Ext]]) -> tuple[list[_Ca], _Ca]:
    anchor = root("Relaxed Root")
    key = _key()
    intermediate = anchor.issue(
        "Relaxed Intermediate", transform(_ca_profile(key, anchor.key, None)), key=key
    )
    return [intermediate.leaf("a.test"), intermediate], anchor


def _flip(kind: type[x509.ExtensionType]) -> Callable[[list[Ext]], list[Ext]]:
    return lambda exts: [(v, not c) if isinstance(v, kind) else (v, c) for v, c in exts]


def _relaxed_root(transform: Callable[[list[Ext]], list[Ext]]) -> tuple[list[_Ca], _Ca]:
    key = _key()
    name = _name("Relaxed Root")
    extensions = transform(_ca_profile(key, key, None))
    anchor = _Ca(_sign("Relaxed Root", name, key, key, extensions, (NOW - DAY, NOW + 90 * DAY)), key)
    intermediate = anchor.ca("Relaxed Intermediate")
    return [intermediate.leaf("a.test"), intermediate], anchor


def _openssl_req_x509(host: str) -> tuple[list[_Ca], _Ca]:
    """What `openssl req -x509 -addext subjectAltName=DNS:host` makes: self-signed, CA:TRUE."""
    key = _key()
    extensions: list[Ext] = [
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False),
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.SubjectAlternativeName([x509.DNSName(host)]), False),
    ]
    pinned = _Ca(_sign(host, _name(host), key, key, extensions, (NOW - DAY, NOW + 90 * DAY)), key)
    return [pinned], pinned


RELAXED_CHAINS: dict[str, Callable[[], tuple[list[_Ca], _Ca]]] = {
    "ee_san_criticality": lambda: _relaxed_leaf(_flip(x509.SubjectAlternativeName)),
    "ee_eku_criticality": lambda: _relaxed_leaf(_flip(x509.ExtendedKeyUsage)),
    "ee_aki_optional": lambda: _relaxed_leaf(_no_aki),
    "ca_key_usage_optional": lambda: _relaxed_ca(
        lambda e: [x for x in e if not isinstance(x[0], x509.KeyUsage)]
    ),
    "ee_pinned_ca_leaf": lambda: _openssl_req_x509("a.test"),
    # On the root, as in the system bundle: an anchor is held to the CA profile too.
    "ca_basic_constraints_noncritical": lambda: _relaxed_root(_flip(x509.BasicConstraints)),
}


def test_every_relaxation_is_tested() -> None:
    assert set(RELAXED_CHAINS) == set(RELAXATIONS)


@pytest.mark.parametrize("relaxation", sorted(RELAXED_CHAINS))
def test_relaxation_accepts_what_strict_webpki_refuses(relaxation: str) -> None:
    chain, anchor = RELAXED_CHAINS[relaxation]()
    strict = (
        PolicyBuilder().store(Store([anchor.cert])).time(NOW).build_server_verifier(x509.DNSName("a.test"))
    )
    with pytest.raises(VerificationError):
        strict.verify(chain[0].cert, [c.cert for c in chain[1:]])
    assert judge(list(chain), "a.test", anchor) == FailureClass.NONE


def test_relaxations_are_precise() -> None:
    anchor = root("Precise Root")
    critical_client_eku = anchor.leaf(
        "a.test", eku=[], extra=[(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), True)]
    )
    assert judge([critical_client_eku], "a.test", anchor) == FailureClass.TLS_UNTRUSTED
    key = _key()
    no_cert_sign = [
        (_ca_usage(key_cert_sign=False), True) if isinstance(v, x509.KeyUsage) else (v, c)
        for v, c in _ca_profile(key, anchor.key, None)
    ]
    intermediate = anchor.issue("No CertSign", no_cert_sign, key=key)
    assert judge([intermediate.leaf("a.test"), intermediate], "a.test", anchor) == FailureClass.TLS_UNTRUSTED


def test_trustme_certificates_verify() -> None:
    """trustme marks a leaf's SAN and EKU critical: strict webpki refuses it, curl accepts it."""
    ca = trustme.CA()
    leaf = ca.issue_cert("a.test")
    ders = [
        x509.load_pem_x509_certificate(p.bytes()).public_bytes(serialization.Encoding.DER)
        for p in leaf.cert_chain_pems
    ]
    assert judge_chain(ders, "a.test", ca.cert_pem.bytes(), NOW).verify_class == FailureClass.NONE
    assert (
        judge_chain(ders, "b.test", ca.cert_pem.bytes(), NOW).verify_class
        == FailureClass.TLS_HOSTNAME_MISMATCH
    )


@pytest.fixture(scope="module")
def fuzz_chain() -> tuple[list[bytes], bytes]:
    anchor = root("Fuzz Root")
    intermediate = anchor.ca("Fuzz Intermediate")
    return [intermediate.leaf("a.test").der, intermediate.der], anchor.pem


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_damage_to_the_chain_is_a_result_never_an_exception(
    fuzz_chain: tuple[list[bytes], bytes], data: st.DataObject
) -> None:
    chain, trusted = fuzz_chain
    which = data.draw(st.integers(0, len(chain) - 1))
    der = bytearray(chain[which])
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del der[data.draw(st.integers(1, len(der) - 1)) :]
    damaged = [bytes(der) if i == which else c for i, c in enumerate(chain)]
    report = judge_chain(damaged, "a.test", trusted, NOW)
    assert len(report.chain) == 2
    assert report.verified == (report.verify_class == FailureClass.NONE)
    assert report.verify_class != FailureClass.INTERNAL


def test_diagnosis_keeps_server_auth_for_intermediates_with_an_eku() -> None:
    """Public intermediates carry EKU serverAuth: the retries that name the class must accept them."""
    anchor = root("EKU CA Root")
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    intermediate = anchor.ca("Server Intermediate", extra=[(eku, False)])
    assert judge([intermediate.leaf("a.test"), intermediate], "a.test", anchor) == FailureClass.NONE
    assert (
        judge([intermediate.leaf("a.test"), intermediate], "b.test", anchor)
        == FailureClass.TLS_HOSTNAME_MISMATCH
    )
    expired = intermediate.issue(
        "a.test",
        _leaf_profile(_key(), intermediate.key, ("a.test",)),
        not_before=NOW - 9 * DAY,
        not_after=NOW - DAY,
    )
    assert judge([expired, intermediate], "a.test", anchor) == FailureClass.TLS_CERT_EXPIRED
    client_ca = anchor.ca(
        "Client Intermediate", extra=[(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)]
    )
    assert judge([client_ca.leaf("a.test"), client_ca], "a.test", anchor) == FailureClass.TLS_UNTRUSTED


def test_a_flood_of_presented_certificates_is_bounded() -> None:
    anchor = root("Flood Root")
    intermediate = anchor.ca("Flood Intermediate")
    decoys = [anchor.ca("Flood Intermediate").der for _ in range(60)]  # same name, other keys
    chain = [intermediate.leaf("a.test").der, *decoys, intermediate.der]
    report = judge_chain(chain, "a.test", anchor.pem, NOW)
    assert len(report.chain) == 62  # all recorded
    # The real issuer came after the first ten intermediates: judged as if it was not sent.
    assert report.verify_class == FailureClass.TLS_INCOMPLETE_CHAIN, report.verify_error
    assert judge_chain([*chain[:5], intermediate.der], "a.test", anchor.pem, NOW).verified
