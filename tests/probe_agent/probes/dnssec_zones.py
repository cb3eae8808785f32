"""Zones signed by the test (dnspython's sign_zone) and a UDP DNS server on 127.0.0.1 answering from them.

    test.              signed, the trust anchor of the tests; www.test. A
    ├── secure.test.   signed, DS in test.; www A, bogus A (its RRSIG tampered after signing)
    └── plain.test.    unsigned, no DS in test. (the signed NSEC of test. proves it); www A

The server answers as a validating-unaware resolver would: each query from the deepest zone
holding the name (a DS from the parent), with RRSIGs when the DO bit is set, the SOA and NSEC
for a name without the type, and the AD bit on answers from signed zones (what a resolver that
validated would say; the probe records it but never believes it).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec

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

    def trust_anchor(self) -> str:
        return f"test. 3600 IN DS {self.anchor_key.ds('test.').to_text()}\n"

    def dnskey_anchor(self) -> str:
        return f"test. 3600 IN DNSKEY {self.anchor_key.dnskey.to_text()}\n"


def make_zones() -> Zones:
    top, secure = new_key(), new_key()
    secure_zone = _zone("secure.test.", "www 60 IN A 127.0.0.1\nbogus 60 IN A 127.0.0.2\n", secure)
    _tamper(secure_zone, "bogus.secure.test.", dns.rdatatype.A)
    plain_zone = _zone("plain.test.", "www 60 IN A 127.0.0.3\n", None)
    top_zone = _zone(
        "test.",
        "www 60 IN A 127.0.0.4\n"
        "secure 60 IN NS ns.secure.test.\n"
        f"secure 60 IN DS {secure.ds('secure.test.').to_text()}\n"
        "plain 60 IN NS ns.plain.test.\n",
        top,
    )
    return Zones(top, [top_zone, secure_zone, plain_zone])


class SignedDnsServer:
    def __init__(self, zones: list[dns.zone.Zone]) -> None:
        self.zones = zones
        self.signed = {z.origin for z in zones if z.get_rdataset(z.origin, dns.rdatatype.DNSKEY)}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.queries: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sock.sendto(self.answer(dns.message.from_wire(data)), peer)

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
        node = zone.get_node(name)
        if node is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            self._add(response.authority, zone, zone.origin, dns.rdatatype.SOA, dnssec)
        elif node.get_rdataset(dns.rdataclass.IN, rdtype) is not None:
            self._add(response.answer, zone, name, rdtype, dnssec)
            if zone.origin in self.signed and dnssec:
                response.flags |= dns.flags.AD
        else:
            self._add(response.authority, zone, zone.origin, dns.rdatatype.SOA, dnssec)
            self._add(response.authority, zone, name, dns.rdatatype.NSEC, dnssec)
        return bytes(response.to_wire())

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

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
