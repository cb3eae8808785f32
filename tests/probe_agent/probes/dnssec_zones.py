"""Zones signed by the test and a UDP DNS server on 127.0.0.1 answering from them.

    test.               NSEC, the trust anchor of the tests; www.test. A
    ├── secure.test.    NSEC, DS in test.; www A, text TXT, alias CNAME to a missing name,
    │                   bogus A (its RRSIG tampered after signing)
    ├── stale.test.     NSEC, DS in test.; www A; every NSEC signature expired (a zone left unsigned)
    ├── hashed.test.    NSEC3 (0 iterations, no salt), DS in test.; www A, text TXT
    ├── slow.test.      NSEC3 with 151 iterations (over RFC 9276's 150), DS in test.; www A
    ├── optout.test.    NSEC3 opt-out, DS in test.; www A; legacy NS without DS (no NSEC3 of its own)
    │   └── legacy.optout.test.  unsigned; www A (only the opt-out NSEC3 covering it says so)
    └── plain.test.     unsigned, no DS in test. (the signed NSEC of test. proves it); www A

dnspython's sign_zone builds the NSEC chains; it has no NSEC3, so `_nsec3_zone` hashes the owner
names (`dns.dnssec.nsec3_hash`), builds the ring and NSEC3PARAM and signs every rrset itself.

The server answers as an authoritative server behind a validating-unaware resolver would: each
query from the deepest zone holding the name (a DS from the parent), with RRSIGs when the DO bit
is set; a missing name is NXDOMAIN with the SOA and the NSEC/NSEC3 proving it (the record
covering the name, and the one covering the wildcard at the closest encloser; for NSEC3 also the
one matching the closest encloser), a missing type the SOA and the NSEC/NSEC3 of the name; the
AD bit is set on answers from signed zones (what a resolver that validated would say; the probe
records it but never believes it). `lies` makes it lie about a name's A/AAAA answers: "nxdomain"
(a forged NXDOMAIN with the real, non-covering NSEC), "nodata" (an empty answer with the real NSEC
of the name), "strip" (the NSEC/NSEC3 removed), "unsign" (their RRSIGs removed) or "tamper"
(their signatures damaged).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec

from tests.probe_agent.probes.servers import UdpResponder

_SOA = "@ 60 IN SOA ns.test. admin.test. 1 60 60 3600 60\n@ 60 IN NS ns.test.\n"


@dataclass
class Key:
    private: ec.EllipticCurvePrivateKey
    dnskey: dns.rdata.Rdata

    def ds(self, zone: str) -> dns.rdata.Rdata:
        return dns.dnssec.make_ds(zone, self.dnskey, "SHA256")


def new_key() -> Key:
    private = ec.generate_private_key(ec.SECP256R1())
    dnskey = dns.dnssec.make_dnskey(private.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)
    return Key(private, dnskey)


def _zone(origin: str, records: str, key: Key | None) -> dns.zone.Zone:
    zone = dns.zone.from_text(_SOA + records, origin, relativize=False)
    if key is not None:
        dns.dnssec.sign_zone(zone, keys=[(key.private, key.dnskey)], lifetime=86400)
    return zone


def _tamper(zone: dns.zone.Zone, name: str, rdtype: dns.rdatatype.RdataType) -> None:
    """Flip a byte of the signature over name/rdtype: the data is unchanged, its RRSIG no longer validates."""
    with zone.writer() as txn:
        sigs = txn.get(name, dns.rdatatype.RRSIG, rdtype)
        bad = [sig.replace(signature=bytes([sig.signature[0] ^ 0xFF]) + sig.signature[1:]) for sig in sigs]
        txn.replace(name, dns.rdataset.from_rdata_list(sigs.ttl, bad))


@dataclass
class Zones:
    anchor_key: Key
    zones: list[dns.zone.Zone]
    keys: dict[str, Key]  # by zone, without the "test." suffix ("test" for test. itself)

    def signed(
        self, zone: str, owner: str, rdtype: dns.rdatatype.RdataType, text: str
    ) -> list[dns.rrset.RRset]:
        """An rrset made up by the test and signed by the zone's key: data the zone vouches for."""
        name, origin = dns.name.from_text(owner), dns.name.from_text(zone)
        rdataset = dns.rdataset.from_rdata(60, _rdata(rdtype, text))
        sig = _sign(name, rdataset, self.keys[zone.removesuffix("test.").rstrip(".") or "test"], origin)
        return [dns.rrset.from_rdata(name, 60, *rdataset), dns.rrset.from_rdata(name, 60, sig)]

    def trust_anchor(self) -> str:
        return f"test. 3600 IN DS {self.anchor_key.ds('test.').to_text()}\n"

    def dnskey_anchor(self) -> str:
        return f"test. 3600 IN DNSKEY {self.anchor_key.dnskey.to_text()}\n"


def _expire(zone: dns.zone.Zone, key: Key, rdtype: dns.rdatatype.RdataType) -> None:
    """Re-sign every rrset of the type with a validity that ended yesterday."""
    now = time.time()
    with zone.writer() as txn:
        for name, rdataset in list(txn.iterate_rdatasets()):
            if rdataset.rdtype == rdtype:
                sig = _sign(
                    name, rdataset, key, zone.origin, inception=now - 2 * 86400, expiration=now - 86400
                )
                txn.replace(name, dns.rdataset.from_rdata(rdataset.ttl, sig))


def _sign(
    name: dns.name.Name, rdataset: dns.rdataset.Rdataset, key: Key, origin: dns.name.Name, **validity: float
) -> dns.rdata.Rdata:
    return dns.dnssec.sign(
        (name, rdataset), key.private, origin, key.dnskey, lifetime=None if validity else 86400, **validity
    )


def _owners(zone: dns.zone.Zone) -> dict[dns.name.Name, set[dns.rdatatype.RdataType]]:
    """Every name of the zone with its types, empty non-terminals (no types) included."""
    owners: dict[dns.name.Name, set[dns.rdatatype.RdataType]] = {}
    for name, node in zone.nodes.items():
        owners[name] = {rdataset.rdtype for rdataset in node} | {dns.rdatatype.RRSIG}
        ancestor = name
        while ancestor != zone.origin:
            ancestor = ancestor.parent()
            owners.setdefault(ancestor, set())
    return owners


def _nsec3_zone(
    origin: str, records: str, key: Key, *, iterations: int = 0, salt: bytes = b"", opt_out: bool = False
) -> dns.zone.Zone:
    """A zone signed with NSEC3 (RFC 5155 §7.1): the hashed owner ring, NSEC3PARAM, every rrset signed."""
    zone = dns.zone.from_text(_SOA + records, origin, relativize=False)
    params = f"1 {{flags}} {iterations} {salt.hex() or '-'}"
    with zone.writer() as txn:
        txn.add(zone.origin, 60, key.dnskey)
        txn.add(zone.origin, 0, _rdata(dns.rdatatype.NSEC3PARAM, params.format(flags=0)))
    owners = _owners(zone)
    if opt_out:  # RFC 5155 §7.1: delegations without a DS get no NSEC3 of their own
        owners = {n: t for n, t in owners.items() if not _unsigned_delegation(zone, n, t)}
    ring = sorted((dns.dnssec.nsec3_hash(name, salt, iterations, 1), types) for name, types in owners.items())
    with zone.writer() as txn:
        for index, (hashed, types) in enumerate(ring):
            following = ring[(index + 1) % len(ring)][0]
            bitmap = " ".join(sorted(dns.rdatatype.to_text(t) for t in types))
            text = f"{params.format(flags=int(opt_out))} {following} {bitmap}"
            txn.add(
                dns.name.Name((hashed.lower().encode(), *zone.origin.labels)),
                60,
                _rdata(dns.rdatatype.NSEC3, text),
            )
    with zone.writer() as txn:
        for name, rdataset in list(txn.iterate_rdatasets()):
            txn.add(name, rdataset.ttl, _sign(name, rdataset, key, zone.origin))
    return zone


def _unsigned_delegation(
    zone: dns.zone.Zone, name: dns.name.Name, types: set[dns.rdatatype.RdataType]
) -> bool:
    return name != zone.origin and dns.rdatatype.NS in types and dns.rdatatype.DS not in types


def _rdata(rdtype: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)


def make_zones() -> Zones:
    keys = {name: new_key() for name in ("test", "secure", "stale", "hashed", "slow", "optout")}
    secure_zone = _zone(
        "secure.test.",
        "www 60 IN A 127.0.0.1\nbogus 60 IN A 127.0.0.2\ntext 60 IN TXT hello\nalias 60 IN CNAME missing\n",
        keys["secure"],
    )
    _tamper(secure_zone, "bogus.secure.test.", dns.rdatatype.A)
    stale_zone = _zone("stale.test.", "www 60 IN A 127.0.0.5\n", keys["stale"])
    _expire(stale_zone, keys["stale"], dns.rdatatype.NSEC)
    hashed = _nsec3_zone("hashed.test.", "www 60 IN A 127.0.0.6\ntext 60 IN TXT hello\n", keys["hashed"])
    slow = _nsec3_zone(
        "slow.test.", "www 60 IN A 127.0.0.7\n", keys["slow"], iterations=151, salt=b"\xaa\xbb"
    )
    optout = _nsec3_zone(
        "optout.test.",
        "www 60 IN A 127.0.0.8\nlegacy 60 IN NS ns.legacy.optout.test.\n",
        keys["optout"],
        opt_out=True,
    )
    plain_zone = _zone("plain.test.", "www 60 IN A 127.0.0.3\n", None)
    legacy_zone = _zone("legacy.optout.test.", "www 60 IN A 127.0.0.9\n", None)
    delegations = "".join(
        f"{child} 60 IN NS ns.{child}.test.\n{child} 60 IN DS {key.ds(child + '.test.').to_text()}\n"
        for child, key in keys.items()
        if child != "test"
    )
    top_zone = _zone(
        "test.", f"www 60 IN A 127.0.0.4\n{delegations}plain 60 IN NS ns.plain.test.\n", keys["test"]
    )
    zones = [top_zone, secure_zone, stale_zone, hashed, slow, optout, plain_zone, legacy_zone]
    return Zones(keys["test"], zones, keys)


class SignedDnsServer(UdpResponder):
    def __init__(self, zones: list[dns.zone.Zone]) -> None:
        self.zones = zones
        self.signed = {z.origin for z in zones if z.get_rdataset(z.origin, dns.rdatatype.DNSKEY)}
        self.queries: list[tuple[str, str]] = []
        # name -> "nxdomain" | "nodata" | "strip" | "unsign" | "tamper"
        self.lies: dict[dns.name.Name, str] = {}
        super().__init__()

    def respond(self, data: bytes) -> bytes | None:
        return self.answer(dns.message.from_wire(data))

    def _zone_for(self, name: dns.name.Name, rdtype: int) -> dns.zone.Zone | None:
        candidates = [
            z
            for z in self.zones
            if name.is_subdomain(z.origin) and not (rdtype == dns.rdatatype.DS and z.origin == name)
        ]
        return max(candidates, key=lambda z: len(z.origin.labels), default=None)

    def answer(self, query: dns.message.Message) -> bytes:
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        self.queries.append((name.to_text(), dns.rdatatype.to_text(rdtype)))
        dnssec = bool(query.ednsflags & dns.flags.DO)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        zone = self._zone_for(name, rdtype)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return bytes(response.to_wire())
        lie = self.lies.get(name, "") if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) else ""
        node = zone.get_node(name)
        cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME) if node else None
        if cname is not None and rdtype != dns.rdatatype.CNAME:  # followed within the zone, once
            self._add(response.answer, zone, name, dns.rdatatype.CNAME, dnssec)
            name = next(iter(cname)).target
            node = zone.get_node(name)
        if node is None or lie == "nxdomain":
            response.set_rcode(dns.rcode.NXDOMAIN)
            self._deny(response, zone, name, dnssec, missing=True)
        elif node.get_rdataset(dns.rdataclass.IN, rdtype) is not None and lie != "nodata":
            self._add(response.answer, zone, name, rdtype, dnssec)
            if zone.origin in self.signed and dnssec:
                response.flags |= dns.flags.AD
        else:
            self._deny(response, zone, name, dnssec, missing=False)
        _LIES.get(lie, lambda r: None)(response)
        return bytes(response.to_wire())

    def _deny(
        self,
        response: dns.message.Message,
        zone: dns.zone.Zone,
        name: dns.name.Name,
        dnssec: bool,
        *,
        missing: bool,
    ) -> None:
        self._add(response.authority, zone, zone.origin, dns.rdatatype.SOA, dnssec)
        if zone.origin not in self.signed:
            return
        kind = dns.rdatatype.NSEC3 if _nsec3_params(zone) else dns.rdatatype.NSEC
        proof = _missing_proof(zone, name) if missing else _nodata_proof(zone, name)
        for owner in dict.fromkeys(proof):
            self._add(response.authority, zone, owner, kind, dnssec)

    @staticmethod
    def _add(
        section: list[dns.rrset.RRset], zone: dns.zone.Zone, name: dns.name.Name, rdtype: int, dnssec: bool
    ) -> None:
        rdataset = zone.get_rdataset(name, rdtype)
        if rdataset is None:
            return
        section.append(dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset)))
        sigs = zone.get_rdataset(name, dns.rdatatype.RRSIG, rdtype)
        if dnssec and sigs is not None:
            section.append(dns.rrset.from_rdata_list(name, sigs.ttl, list(sigs)))


def _nsec3_params(zone: dns.zone.Zone) -> dns.rdata.Rdata | None:
    rdataset = zone.get_rdataset(zone.origin, dns.rdatatype.NSEC3PARAM)
    return next(iter(rdataset)) if rdataset else None


def _closest_encloser(zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name:
    """The deepest existing ancestor of name (an empty non-terminal counts: it has names below)."""
    closest = name.parent()
    while not any(owner.is_subdomain(closest) for owner in zone.nodes):
        closest = closest.parent()
    return closest


def _missing_proof(zone: dns.zone.Zone, name: dns.name.Name) -> list[dns.name.Name]:
    """The owners of the NSEC/NSEC3 records proving name does not exist (RFC 4035 §3.1.3.2, RFC 5155 §7.2.2)."""
    closest = _closest_encloser(zone, name)
    wildcard = dns.name.Name((b"*", *closest.labels))
    if _nsec3_params(zone) is None:
        return [_nsec_before(zone, name), _nsec_before(zone, wildcard)]
    next_closer = dns.name.Name(name.labels[-len(closest.labels) - 1 :])
    return [_nsec3_owner(zone, closest), _nsec3_before(zone, next_closer), _nsec3_before(zone, wildcard)]


def _nodata_proof(zone: dns.zone.Zone, name: dns.name.Name) -> list[dns.name.Name]:
    if _nsec3_params(zone) is None:
        return [name]
    if zone.get_node(_nsec3_owner(zone, name)) is not None:
        return [_nsec3_owner(zone, name)]
    # An opt-out delegation without its own NSEC3 (RFC 5155 §7.2.4): the closest encloser's, and
    # the opt-out one covering the name.
    return [_nsec3_owner(zone, _closest_encloser(zone, name)), _nsec3_before(zone, name)]


def _nsec_before(zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name:
    """The owner of the NSEC at or before name in canonical order: the one covering it if it is missing."""
    owners = sorted(
        n for n, node in zone.nodes.items() if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC)
    )
    return max((owner for owner in owners if owner <= name), default=owners[-1])


def _nsec3_owner(zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name:
    params = _nsec3_params(zone)
    assert params is not None
    hashed = dns.dnssec.nsec3_hash(name, params.salt, params.iterations, params.algorithm)
    return dns.name.Name((hashed.lower().encode(), *zone.origin.labels))


def _nsec3_before(zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name:
    """The owner of the NSEC3 whose hash is at or before name's: the one covering it if it is missing."""
    hashed = _nsec3_owner(zone, name).labels[0]
    owners = sorted(
        n for n, node in zone.nodes.items() if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC3)
    )
    return max((o for o in owners if o.labels[0] <= hashed), default=owners[-1], key=lambda o: o.labels[0])


def _is_denial(rrset: dns.rrset.RRset) -> bool:
    kinds = (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)
    return rrset.rdtype in kinds or (rrset.rdtype == dns.rdatatype.RRSIG and rrset.covers in kinds)


def _strip(response: dns.message.Message) -> None:
    response.authority = [rrset for rrset in response.authority if not _is_denial(rrset)]


def _tamper_denial(response: dns.message.Message) -> None:
    for index, rrset in enumerate(response.authority):
        if rrset.rdtype == dns.rdatatype.RRSIG and _is_denial(rrset):
            bad = [
                sig.replace(signature=bytes([sig.signature[0] ^ 0xFF]) + sig.signature[1:]) for sig in rrset
            ]
            response.authority[index] = dns.rrset.from_rdata_list(rrset.name, rrset.ttl, bad)


def _unsign(response: dns.message.Message) -> None:
    response.authority = [
        r for r in response.authority if not (_is_denial(r) and r.rdtype == dns.rdatatype.RRSIG)
    ]


_LIES = {"strip": _strip, "unsign": _unsign, "tamper": _tamper_denial}
