"""DNSSEC validation of a dns probe's answer, by the agent itself, from a trust anchor.

Trust anchors are DS or DNSKEY records in zone-file text; the default is the root zone's KSKs
(KSK-2017 and KSK-2024, from IANA's root-anchors.xml).
"""

from __future__ import annotations

import dns.exception
import dns.name
import dns.rdatatype
import dns.rrset
import dns.zonefile

ROOT_TRUST_ANCHOR = """\
. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
"""


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
            raise ValueError(
                f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}: only DS and DNSKEY records anchor trust"
            )
    return rrsets
