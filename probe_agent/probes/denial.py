"""Denial of existence (RFC 4035 §5.4, RFC 5155 §8.4-8.7): whether NSEC/NSEC3 rrsets whose
signatures the validator (dnssec.py) has already checked prove that a name does not exist
(NXDOMAIN) or has no record of a type (no-data). Pure: nothing here queries or validates a
signature. A proof that does not hold raises Bogus; one that cannot be judged securely
(NSEC3 over 150 iterations, opt-out, an unknown hash) raises Insecure.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TypeVar

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.rrset
from dns.dnssectypes import NSEC3Hash
from dns.rdtypes.ANY.NSEC import NSEC
from dns.rdtypes.ANY.NSEC3 import NSEC3

# RFC 9276 §3.2: a validator may treat NSEC3 with more iterations than this as insecure.
MAX_NSEC3_ITERATIONS = 150
NSEC3_OPT_OUT = 0x01  # RFC 5155 §3.1.2.1


class Bogus(Exception):
    """The records do not prove what the answer claims."""


class Insecure(Exception):
    """Nothing can be proven securely here (a deliberately unsigned or unjudgeable zone)."""


_NameOrHash = TypeVar("_NameOrHash", dns.name.Name, str)


def _between(low: _NameOrHash, value: _NameOrHash, high: _NameOrHash) -> bool:
    """Whether value lies strictly between low and high on the ring of a zone's chain (canonical
    order; the last record of the chain points back to the first, so high may be below low)."""
    if low < high:
        return bool(low < value < high)
    return bool(value > low or value < high)


def types_of(rdata: NSEC | NSEC3) -> set[int]:
    """The types of an NSEC/NSEC3 type bitmap (RFC 4034 §4.1.2)."""
    return {
        window * 256 + index * 8 + bit
        for window, bitmap in rdata.windows
        for index, byte in enumerate(bitmap)
        for bit in range(8)
        if byte & (0x80 >> bit)
    }


def _is_cut(types: set[int]) -> bool:
    """A parent-side record of a zone cut (NS without SOA) or a DNAME: nothing below it is proven."""
    return (dns.rdatatype.NS in types and dns.rdatatype.SOA not in types) or dns.rdatatype.DNAME in types


def _check_types(name: dns.name.Name, types: set[int], rdtype: dns.rdatatype.RdataType, proof: str) -> None:
    present = {rdtype, dns.rdatatype.CNAME} & types
    if present:
        listed = "/".join(sorted(dns.rdatatype.to_text(t) for t in present))
        raise Bogus(f"the {proof} of {name} lists {listed}: the data exists")
    if dns.rdatatype.NS in types and dns.rdatatype.SOA not in types and rdtype != dns.rdatatype.DS:
        raise Bogus(f"the {proof} of {name} is the parent side of a delegation: it proves nothing below it")


def _wildcard(closest_encloser: dns.name.Name) -> dns.name.Name:
    return dns.name.Name((b"*", *closest_encloser.labels))


def _nsec_owned(nsecs: list[dns.rrset.RRset], name: dns.name.Name) -> NSEC | None:
    return next((rdata for rrset in nsecs if rrset.name == name for rdata in rrset), None)


def _nsec_covering(nsecs: list[dns.rrset.RRset], name: dns.name.Name) -> tuple[dns.name.Name, NSEC] | None:
    for rrset in nsecs:
        for rdata in rrset:
            below_cut = name.is_subdomain(rrset.name) and _is_cut(types_of(rdata))
            if _between(rrset.name, name, rdata.next) and not below_cut:
                return rrset.name, rdata
    return None


def _common_ancestor(a: dns.name.Name, b: dns.name.Name) -> dns.name.Name:
    common = a.fullcompare(b)[2]
    ancestor: dns.name.Name = a.split(common)[1]
    return ancestor


def _nsec_closest_encloser(nsecs: list[dns.rrset.RRset], name: dns.name.Name, proof: str) -> dns.name.Name:
    """The closest encloser of a name an NSEC covers: the longer of its common ancestors with the
    NSEC's owner and next name (RFC 4592 §4)."""
    covering = _nsec_covering(nsecs, name)
    if covering is None:
        exists = " (an NSEC owned by it says it exists)" if _nsec_owned(nsecs, name) is not None else ""
        raise Bogus(f"{proof}: no NSEC covers {name}{exists}")
    owner, rdata = covering
    return max(_common_ancestor(name, owner), _common_ancestor(name, rdata.next), key=len)


def nsec_nxdomain(nsecs: list[dns.rrset.RRset], name: dns.name.Name) -> None:
    closest = _nsec_closest_encloser(nsecs, name, "NXDOMAIN")
    if closest == name:
        raise Bogus(f"NXDOMAIN: {name} is an empty non-terminal, so it exists")
    wildcard = _wildcard(closest)
    if _nsec_covering(nsecs, wildcard) is None:
        raise Bogus(f"NXDOMAIN: no NSEC covers the wildcard {wildcard}, which would answer {name}")


def nsec_nodata(nsecs: list[dns.rrset.RRset], name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> None:
    owned = _nsec_owned(nsecs, name)
    if owned is not None:
        _check_types(name, types_of(owned), rdtype, "NSEC")
        return
    # RFC 4035 §3.1.3.2 and §3.1.3.4: an empty non-terminal, or a name answered by a wildcard
    # that has no record of the type.
    closest = _nsec_closest_encloser(nsecs, name, "no data")
    if closest == name:
        return
    wildcard = _wildcard(closest)
    matched = _nsec_owned(nsecs, wildcard)
    if matched is None:
        raise Bogus(f"no data: no NSEC owned by {name} or by the wildcard {wildcard}")
    _check_types(wildcard, types_of(matched), rdtype, "NSEC")


@dataclass(frozen=True)
class _Nsec3Chain:
    """The NSEC3 records of one zone with one hash parameter set, by hashed owner name."""

    zone: dns.name.Name
    salt: bytes
    iterations: int
    records: list[tuple[str, NSEC3]]

    def hash(self, name: dns.name.Name) -> str:
        return dns.dnssec.nsec3_hash(name, self.salt, self.iterations, NSEC3Hash.SHA1)

    def matching(self, name: dns.name.Name) -> NSEC3 | None:
        hashed = self.hash(name)
        return next((rdata for owner, rdata in self.records if owner == hashed), None)

    def covering(self, name: dns.name.Name) -> NSEC3 | None:
        hashed = self.hash(name)
        return next((r for owner, r in self.records if _between(owner, hashed, _base32hex(r.next))), None)


def _base32hex(raw: bytes) -> str:
    return base64.b32hexencode(raw).decode().rstrip("=")


def nsec3_chain(zone: dns.name.Name, rrsets: list[dns.rrset.RRset]) -> _Nsec3Chain:
    first = next(iter(rrsets[0]))
    if first.algorithm != NSEC3Hash.SHA1:
        raise Insecure(f"NSEC3 hash algorithm {first.algorithm} is unknown (RFC 5155 §8.1)")
    if first.iterations > MAX_NSEC3_ITERATIONS:
        raise Insecure(
            f"NSEC3 of {zone} uses {first.iterations} iterations, over {MAX_NSEC3_ITERATIONS} (RFC 9276 §3.2)"
        )
    records = [
        (rrset.name.labels[0].decode().upper(), rdata)
        for rrset in rrsets
        if rrset.name.parent() == zone
        for rdata in rrset
        if (rdata.algorithm, rdata.iterations, rdata.salt) == (first.algorithm, first.iterations, first.salt)
    ]
    return _Nsec3Chain(zone, first.salt, first.iterations, records)


def _nsec3_closest_encloser(
    chain: _Nsec3Chain, name: dns.name.Name, proof: str
) -> tuple[dns.name.Name, NSEC3]:
    """The closest encloser of name and the NSEC3 covering the next closer name (RFC 5155 §8.3)."""
    next_closer = name
    while next_closer != chain.zone and next_closer.is_subdomain(chain.zone):
        closest = next_closer.parent()
        matched = chain.matching(closest)
        if matched is not None:
            if _is_cut(types_of(matched)):
                raise Bogus(f"{proof}: the NSEC3 of {closest}, above {name}, is a delegation or DNAME")
            covering = chain.covering(next_closer)
            if covering is None:
                raise Bogus(f"{proof}: no NSEC3 covers {next_closer}, the next closer name of {name}")
            return closest, covering
        next_closer = closest
    raise Bogus(f"{proof}: no NSEC3 matches a closest encloser of {name}")


def nsec3_nxdomain(chain: _Nsec3Chain, name: dns.name.Name) -> None:
    if chain.matching(name) is not None:
        raise Bogus(f"NXDOMAIN: an NSEC3 matching {name} says it exists")
    closest, covering = _nsec3_closest_encloser(chain, name, "NXDOMAIN")
    wildcard = _wildcard(closest)
    if chain.covering(wildcard) is None:
        raise Bogus(f"NXDOMAIN: no NSEC3 covers the wildcard {wildcard}, which would answer {name}")
    if covering.flags & NSEC3_OPT_OUT:
        # RFC 5155 §9.2: an opt-out span may hold unsigned delegations, so the name may exist
        # under one; its absence is not proven, only not disproven.
        raise Insecure(
            f"{name} is covered by an opt-out NSEC3 of {chain.zone}: it may be under an unsigned delegation"
        )


def nsec3_nodata(chain: _Nsec3Chain, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> None:
    matched = chain.matching(name)
    if matched is not None:
        _check_types(name, types_of(matched), rdtype, "NSEC3")
        return
    if rdtype == dns.rdatatype.DS:
        # RFC 5155 §8.6: an unsigned delegation under opt-out has no NSEC3 of its own; the closest
        # provable encloser and an opt-out NSEC3 covering the next closer name say so (insecure).
        _, covering = _nsec3_closest_encloser(chain, name, "no DS")
        if covering.flags & NSEC3_OPT_OUT:
            raise Insecure(f"an opt-out NSEC3 covers {name}: a delegation without DS (RFC 5155 §8.6)")
        raise Bogus(f"no DS: no NSEC3 matches {name}, and the one covering it is not opt-out")
    # RFC 5155 §8.7: a wildcard that has no record of the type answers the name.
    closest, _ = _nsec3_closest_encloser(chain, name, "no data")
    wildcard = _wildcard(closest)
    wild = chain.matching(wildcard)
    if wild is None:
        raise Bogus(f"no data: no NSEC3 matches {name} or the wildcard {wildcard}")
    _check_types(wildcard, types_of(wild), rdtype, "NSEC3")
