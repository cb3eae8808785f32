"""Name resolution through a configured DNS server (dnspython), so DNS failures are measured."""

from __future__ import annotations

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver

from probe_agent.probes.failures import ProbeFailure
from probenet.v1.probe_pb2 import FailureClass

QUERY_TIMEOUT_S = 5.0


def server_address(server: str) -> tuple[str, int]:
    """host:port (or a bare host, port 53; a bare IPv6 address) of a DNS server."""
    host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "53")
    return host or server, int(port or 53)


def system_nameserver() -> str:
    """The first nameserver of the system's resolver configuration (/etc/resolv.conf)."""
    try:
        nameservers = dns.resolver.Resolver().nameservers
    except dns.exception.DNSException as exc:
        raise ProbeFailure(FailureClass.DNS_ERROR, f"no system resolver: {exc}") from exc
    return str(nameservers[0])


def _resolver(server: str) -> dns.asyncresolver.Resolver:
    host, port = server_address(server)
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    return resolver


async def dnssec_query(
    server: str, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.message.Message:
    """One query with the DO bit (signatures wanted) and the AD bit (RFC 6840: report it), UDP then TCP."""
    host, port = server_address(server)
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    query.flags |= dns.flags.AD
    try:
        response, _ = await dns.asyncquery.udp_with_fallback(query, host, timeout=QUERY_TIMEOUT_S, port=port)
    except dns.exception.Timeout as exc:
        raise ProbeFailure(
            FailureClass.DNS_TIMEOUT, f"DNS timeout asking {server} for {name} {rdtype.name}"
        ) from exc
    except (dns.exception.DNSException, OSError) as exc:
        raise ProbeFailure(FailureClass.DNS_ERROR, f"DNS error asking {server} for {name}: {exc}") from exc
    return response


async def query_addresses(host: str, server: str, ip_version: str = "") -> list[str]:
    resolver = _resolver(server)
    rdtypes = {"4": ["A"], "6": ["AAAA"]}.get(ip_version, ["A", "AAAA"])
    addresses: list[str] = []
    nxdomain = False
    for rdtype in rdtypes:
        try:
            answer = await resolver.resolve(host, rdtype, lifetime=5.0)
        except dns.resolver.NXDOMAIN as exc:
            nxdomain = True
            last: Exception = exc
        except dns.resolver.NoAnswer as exc:
            last = exc
        except dns.exception.Timeout as exc:
            raise ProbeFailure(
                FailureClass.DNS_TIMEOUT, f"DNS timeout asking {server} for {host}", host
            ) from exc
        except dns.exception.DNSException as exc:
            raise ProbeFailure(FailureClass.DNS_ERROR, f"DNS error for {host}: {exc}", host) from exc
        else:
            addresses.extend(r.to_text() for r in answer)
    if addresses:
        return addresses
    if nxdomain:
        raise ProbeFailure(FailureClass.DNS_NXDOMAIN, f"{host}: NXDOMAIN from {server}", host) from last
    raise ProbeFailure(FailureClass.DNS_ERROR, f"{host}: no address records from {server}", host)
