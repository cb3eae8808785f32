"""DNSSEC validation of a dns probe's answer, by the agent itself, from a trust anchor.

The resolver's AD bit is recorded but never believed: the agent walks the chain of trust
itself, with dnspython's `dns.dnssec.validate` checking every signature, from the anchor down
to the zone that signed the answer:

    anchor (DS or DNSKEY) -> DNSKEY of the anchor zone (self-signed by an anchored key)
      -> DS of the child, signed by the parent's DNSKEY -> DNSKEY of the child ... -> answer RRSIG

Verdicts: `secure` (every link validates), `bogus` (a signature or a DS/DNSKEY link fails, a
signed zone's data arrives unsigned, or no chain reaches the anchor), `insecure` (the answer is
unsigned and a signed NSEC/NSEC3 record of the parent proves that its zone has no DS: a
deliberately unsigned zone).

Denial of existence is validated too (`validate_denial`): the NSEC/NSEC3 rrsets of the authority
section, each signature checked against its zone's trusted keys, must prove that the name does
not exist (NXDOMAIN: RFC 4035 §5.4, RFC 5155 §8.4) or has no record of the type (no-data: RFC
4035 §5.4, RFC 5155 §8.5/§8.7). NSEC3 with more than 150 iterations (RFC 9276 §3.2) or an
opt-out record covering the next closer name (RFC 5155 §9.2) is `insecure`; no NSEC/NSEC3 at all
is `insecure` only for a proven unsigned zone, else `bogus`. Here the records' signatures are
checked; whether they prove the denial is denial.py's (pure) business.

Trust anchors are DS or DNSKEY records in zone-file text; the default is the root zone's KSKs
(KSK-2017 and KSK-2024, from IANA's root-anchors.xml).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NoReturn

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zonefile

from probe_agent.probes.denial import (
    Bogus,
    Insecure,
    nsec3_chain,
    nsec3_nodata,
    nsec3_nxdomain,
    nsec_nodata,
    nsec_nxdomain,
)

ROOT_TRUST_ANCHOR = """\
. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
"""
SECURE, INSECURE, BOGUS = "secure", "insecure", "bogus"
# A chain deeper than this is a loop or a hostile resolver, not a real hierarchy.
MAX_CHAIN_DEPTH = 16
_DENIAL_TYPES = (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)

# Validated DNSKEY sets shared by an agent's probes: (resolver, anchor text, zone) ->
# (monotonic expiry, keys, the zones from the anchor down to this one).
KEY_CACHE_S = 300.0
KEY_CACHE_MAX = 4096
_KEY_CACHE: dict[tuple[str, str, dns.name.Name], tuple[float, dns.rrset.RRset, tuple[str, ...]]] = {}

Query = Callable[[dns.name.Name, dns.rdatatype.RdataType], Awaitable[dns.message.Message]]


def parse_trust_anchor(text: str) -> list[dns.rrset.RRset]:
    """The DS and DNSKEY rrsets of a trust anchor file; ValueError naming what is wrong."""
    try:
        rrsets = dns.zonefile.read_rrsets(text, rdclass=None, default_ttl=0, relativize=False)
    except dns.exception.DNSException as exc:
        raise ValueError(f"not DS or DNSKEY records in zone-file form: {exc}") from exc
    if not rrsets:
        raise ValueError("no DS or DNSKEY record in it")
    for rrset in rrsets:
        if rrset.rdtype not in (dns.rdatatype.DS, dns.rdatatype.DNSKEY):
            kind = dns.rdatatype.to_text(rrset.rdtype)
            raise ValueError(f"{rrset.name} {kind}: only DS and DNSKEY records anchor trust")
    return rrsets


@dataclass(frozen=True)
class Verdict:
    state: str
    chain: tuple[str, ...]  # zones whose keys were trusted, anchor first
    reason: str = ""


@dataclass
class Validator:
    """Validates the answers of one probe. The DNSKEY sets it validated are shared with the
    agent's later probes through the same resolver and anchor (`cache_scope`) for their TTL, at
    most KEY_CACHE_S: the chain is walked once every few minutes, not on every probe. Answers
    are always validated afresh."""

    query: Query
    anchors: list[dns.rrset.RRset]
    now: float = field(default_factory=time.time)
    cache_scope: tuple[str, str] | None = None  # (resolver, trust anchor text); None: no sharing
    _keys: dict[dns.name.Name, dns.rrset.RRset] = field(default_factory=dict)
    _paths: dict[dns.name.Name, tuple[str, ...]] = field(default_factory=dict)  # anchor .. zone
    _chain: list[str] = field(default_factory=list)

    async def validate(self, response: dns.message.Message) -> Verdict:
        """The verdict on every rrset of the answer section (an empty answer has nothing to judge)."""
        return await self._verdict(self._judge_answer(response))

    async def validate_denial(
        self, response: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> Verdict:
        """The verdict on the proof that `name` does not exist (NXDOMAIN) or has no `rdtype` record
        (NOERROR, no data). A CNAME chain in the answer is validated and its target is the name denied."""
        return await self._verdict(self._judge_denial(response, name, rdtype))

    async def _verdict(self, judgement: Awaitable[object]) -> Verdict:
        try:
            await judgement
        except Bogus as exc:
            return Verdict(BOGUS, tuple(self._chain), str(exc))
        except Insecure as exc:
            return Verdict(INSECURE, tuple(self._chain), str(exc))
        except (ValueError, dns.exception.DNSException) as exc:  # a malformed record is data, not a crash
            return Verdict(BOGUS, tuple(self._chain), f"malformed record: {exc}")
        return Verdict(SECURE, tuple(self._chain))

    async def _judge_answer(self, response: dns.message.Message) -> None:
        for rrset in response.answer:
            if rrset.rdtype != dns.rdatatype.RRSIG:
                await self._validate_rrset(rrset, _signatures(response.answer, rrset))

    async def _judge_denial(
        self,
        response: dns.message.Message,
        name: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        *,
        unsigned_zone_ok: bool = True,
    ) -> dns.name.Name:
        """Raises unless the response proves the denial; returns the zone whose records prove it.
        `unsigned_zone_ok`: without signed proof, try proving the zone unsigned (else bogus)."""
        await self._judge_answer(response)
        name = _cname_target(response, name)
        zone, proof = await self._signed_proof(name, response.authority, unsigned_zone_ok)
        nxdomain = response.rcode() == dns.rcode.NXDOMAIN
        nsec3s = [r for r in proof if r.rdtype == dns.rdatatype.NSEC3]
        if nsec3s and nxdomain:
            nsec3_nxdomain(nsec3_chain(zone, nsec3s), name)
        elif nsec3s:
            nsec3_nodata(nsec3_chain(zone, nsec3s), name, rdtype)
        elif nxdomain:
            nsec_nxdomain(proof, name)
        else:
            nsec_nodata(proof, name, rdtype)
        return zone

    async def _signed_proof(
        self, name: dns.name.Name, section: list[dns.rrset.RRset], unsigned_zone_ok: bool
    ) -> tuple[dns.name.Name, list[dns.rrset.RRset]]:
        """The zone of the deepest signer of the section's NSEC/NSEC3 rrsets, and its rrsets, every
        signature validated; records of other zones (a parent's) prove nothing about the name."""
        by_zone: dict[dns.name.Name, list[dns.rrset.RRset]] = {}
        for rrset in section:
            if rrset.rdtype not in _DENIAL_TYPES:
                continue
            sigs = _signatures(section, rrset)
            if sigs is None:
                kind = dns.rdatatype.to_text(rrset.rdtype)
                await self._unsigned_proof(name, f"{rrset.name} {kind} is not signed", unsigned_zone_ok)
            signer = _signer(sigs)
            if not name.is_subdomain(signer):
                kind = dns.rdatatype.to_text(rrset.rdtype)
                raise Bogus(f"{rrset.name} {kind} signed by {signer}, which is not a zone of {name}")
            await self._validate_rrset(rrset, sigs)
            by_zone.setdefault(signer, []).append(rrset)
        if not by_zone:
            await self._unsigned_proof(
                name, f"{name}: signed zone, no proof of non-existence", unsigned_zone_ok
            )
        zone = max(by_zone, key=lambda z: len(z.labels))
        return zone, by_zone[zone]

    async def _unsigned_proof(self, name: dns.name.Name, problem: str, unsigned_zone_ok: bool) -> NoReturn:
        """A denial without signed proof is right only from an unsigned zone (insecure); else bogus."""
        if not unsigned_zone_ok:
            raise Bogus(problem)
        try:
            await self._prove_unsigned(name)
        except Bogus as exc:
            raise Bogus(f"{problem} ({exc})") from exc

    async def _validate_rrset(self, rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None) -> None:
        if sigs is None:
            await self._prove_unsigned(rrset.name)
        signer = _signer(sigs)
        if not rrset.name.is_subdomain(signer):
            raise Bogus(f"{rrset.name} signed by {signer}, which is not one of its zones")
        _check(rrset, sigs, signer, await self._trusted_keys(signer, 0), self.now)

    async def _trusted_keys(self, zone: dns.name.Name, depth: int) -> dns.rrset.RRset:
        """The DNSKEY rrset of `zone`, validated from the anchor down."""
        known = self._keys.get(zone) or self._from_cache(zone)
        if known is not None:
            return known
        if depth > MAX_CHAIN_DEPTH:
            raise Bogus(f"chain of trust deeper than {MAX_CHAIN_DEPTH} zones at {zone}")
        response = await self.query(zone, dns.rdatatype.DNSKEY)
        dnskeys = _find(response, zone, dns.rdatatype.DNSKEY)
        if dnskeys is None:
            raise Bogus(f"no DNSKEY for {zone}")
        sigs = _signatures(response.answer, dnskeys)
        if sigs is None:
            raise Bogus(f"DNSKEY of {zone} is not signed")
        anchored = self._anchor_keys(zone, dnskeys)
        path: tuple[str, ...] = (zone.to_text(),)
        if anchored is None:
            if zone == dns.name.root:
                raise Bogus("no chain of trust reaches the trust anchor (root reached)")
            anchored, parent = await self._keys_from_ds(zone, dnskeys, depth)
            path = self._paths[parent] + path
        _check(dnskeys, sigs, zone, anchored, self.now)
        self._trust(zone, dnskeys, path)
        self._to_cache(zone, dnskeys, path)
        return dnskeys

    def _trust(self, zone: dns.name.Name, dnskeys: dns.rrset.RRset, path: tuple[str, ...]) -> None:
        self._keys[zone], self._paths[zone] = dnskeys, path
        self._chain.extend(z for z in path if z not in self._chain)

    def _from_cache(self, zone: dns.name.Name) -> dns.rrset.RRset | None:
        if self.cache_scope is None:
            return None
        hit = _KEY_CACHE.get((*self.cache_scope, zone))
        if hit is None or hit[0] <= time.monotonic():
            return None
        self._trust(zone, hit[1], hit[2])
        return hit[1]

    def _to_cache(self, zone: dns.name.Name, dnskeys: dns.rrset.RRset, path: tuple[str, ...]) -> None:
        if self.cache_scope is None:
            return
        if len(_KEY_CACHE) >= KEY_CACHE_MAX:
            _KEY_CACHE.pop(next(iter(_KEY_CACHE)))
        _KEY_CACHE[(*self.cache_scope, zone)] = (
            time.monotonic() + min(dnskeys.ttl, KEY_CACHE_S),
            dnskeys,
            path,
        )

    def _anchor_keys(self, zone: dns.name.Name, dnskeys: dns.rrset.RRset) -> dns.rrset.RRset | None:
        """The keys of `dnskeys` a trust anchor for `zone` vouches for; None if no anchor names zone."""
        anchors = [a for a in self.anchors if a.name == zone]
        if not anchors:
            return None
        vouched = [k for k in dnskeys if any(_vouches(a, zone, k) for a in anchors)]
        if not vouched:
            raise Bogus(f"no DNSKEY of {zone} matches the trust anchor")
        return _rrset(zone, dnskeys.ttl, vouched)

    async def _keys_from_ds(
        self, zone: dns.name.Name, dnskeys: dns.rrset.RRset, depth: int
    ) -> tuple[dns.rrset.RRset, dns.name.Name]:
        response = await self.query(zone, dns.rdatatype.DS)
        ds = _find(response, zone, dns.rdatatype.DS)
        if ds is None:
            raise Bogus(f"{zone} has DNSKEYs but no DS in its parent")
        sigs = _signatures(response.answer, ds)
        if sigs is None:
            raise Bogus(f"DS of {zone} is not signed")
        parent = _signer(sigs)
        if parent == zone or not zone.is_subdomain(parent):
            raise Bogus(f"DS of {zone} signed by {parent}, which is not its parent")
        _check(ds, sigs, parent, await self._trusted_keys(parent, depth + 1), self.now)
        vouched = [k for k in dnskeys if _vouches(ds, zone, k)]
        if not vouched:
            raise Bogus(f"no DNSKEY of {zone} matches its DS")
        return _rrset(zone, dnskeys.ttl, vouched), parent

    async def _prove_unsigned(self, name: dns.name.Name) -> NoReturn:
        """Insecure if the parent's validated NSEC/NSEC3 prove the zone of `name` has no DS (an
        opt-out NSEC3 covering it included: RFC 5155 §8.6, how .com proves its unsigned
        delegations); else bogus."""
        zone = await self._zone_of(name)
        if any(anchor.name == zone for anchor in self.anchors):
            raise Bogus(f"{name} is unsigned but its zone {zone} is a trust anchor")
        response = await self.query(zone, dns.rdatatype.DS)
        if _find(response, zone, dns.rdatatype.DS) is not None:
            raise Bogus(f"{name} is unsigned but its zone {zone} has a DS (signatures stripped?)")
        try:
            parent = await self._judge_denial(response, zone, dns.rdatatype.DS, unsigned_zone_ok=False)
        except Insecure as exc:
            raise Insecure(f"{zone} is an unsigned zone ({exc})") from exc
        except Bogus as exc:
            raise Bogus(f"{name} is unsigned and nothing proves its zone {zone} has no DS ({exc})") from exc
        raise Insecure(f"{zone} is an unsigned zone (no DS, proven by {parent})")

    async def _zone_of(self, name: dns.name.Name) -> dns.name.Name:
        """The apex of the zone holding `name`: the owner of the SOA the resolver returns for it."""
        response = await self.query(name, dns.rdatatype.SOA)
        for rrset in [*response.answer, *response.authority]:
            if rrset.rdtype == dns.rdatatype.SOA and name.is_subdomain(rrset.name):
                return rrset.name
        raise Bogus(f"no SOA found for the zone of {name}")


def _check(
    rrset: dns.rrset.RRset, sigs: dns.rrset.RRset, signer: dns.name.Name, keys: dns.rrset.RRset, now: float
) -> None:
    try:
        dns.dnssec.validate(rrset, sigs, {signer: keys}, now=now)
    except dns.exception.ValidationFailure as exc:
        kind = dns.rdatatype.to_text(rrset.rdtype)
        raise Bogus(
            f"{rrset.name} {kind}: signature by {signer} does not validate: {_why(sigs, now, exc)}"
        ) from exc
    except dns.exception.DNSException as exc:  # an unsupported algorithm, a malformed record
        raise Bogus(f"{rrset.name}: cannot validate: {exc}") from exc


def _why(sigs: dns.rrset.RRset, now: float, exc: Exception) -> str:
    """Expired or not yet valid signatures said as such (a zone its signer stopped re-signing)."""
    if all(sig.expiration < now for sig in sigs):
        ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(sig.expiration for sig in sigs)))
        return f"signature expired at {ended}"
    if all(sig.inception > now for sig in sigs):
        return "signature not yet valid"
    return str(exc)


def _vouches(anchor: dns.rrset.RRset, zone: dns.name.Name, key: dns.rdata.Rdata) -> bool:
    """Whether a DS or DNSKEY anchor rrset names this DNSKEY (DS: same digest of it)."""
    if anchor.rdtype == dns.rdatatype.DNSKEY:
        return key in anchor
    for ds in anchor:
        try:
            if dns.dnssec.make_ds(zone, key, ds.digest_type) == ds:
                return True
        except (dns.exception.UnsupportedAlgorithm, ValueError):
            continue
    return False


def _find(response: dns.message.Message, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
    for rrset in response.answer:
        if rrset.name == name and rrset.rdtype == rdtype:
            return rrset
    return None


def _signatures(section: list[dns.rrset.RRset], rrset: dns.rrset.RRset) -> dns.rrset.RRset | None:
    for sigs in section:
        if sigs.rdtype == dns.rdatatype.RRSIG and sigs.covers == rrset.rdtype and sigs.name == rrset.name:
            return sigs
    return None


def _signer(sigs: dns.rrset.RRset) -> dns.name.Name:
    signer: dns.name.Name = next(iter(sigs)).signer
    return signer


def _rrset(name: dns.name.Name, ttl: int, rdatas: list[dns.rdata.Rdata]) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    for rdata in rdatas:
        rrset.add(rdata, ttl)
    return rrset


def _cname_target(response: dns.message.Message, name: dns.name.Name) -> dns.name.Name:
    for _ in range(MAX_CHAIN_DEPTH):
        cname = _find(response, name, dns.rdatatype.CNAME)
        if cname is None:
            break
        name = next(iter(cname)).target
    return name
