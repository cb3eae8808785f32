"""Name resolution through a configured DNS server (dnspython), so DNS failures are measured."""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.resolver

from probe_agent.probes.failures import ProbeFailure
from probenet.v1.probe_pb2 import FailureClass


def _resolver(server: str) -> dns.asyncresolver.Resolver:
    host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "53")
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [host or server]
    resolver.port = int(port or 53)
    return resolver


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
