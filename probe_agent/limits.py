"""Size limits of a result: every string and every repeated field, in one place.

A hostile target decides much of what a result holds (error text quoting its certificate's
SAN list, a page with thousands of failing hosts, 1 MB URLs), and the spool, the stream and
the collector's memory all pay for it. The agent caps each result once, where it is finalized
before spooling (`cap_result`), so every result that leaves an agent is at most
`MAX_RESULT_BYTES` on the wire.

Strings are cut at a UTF-8 character boundary to their limit in bytes; error texts end in a
marker saying how much was cut. Repeated fields keep their first N entries (a chain keeps the
leaf, redirects the first hops, a page's failure groups the largest: they come most failures
first). A field named in no table gets the defaults, so a field
added to the wire later is capped too.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from probenet.v1.probe_pb2 import ProbeResult

ERROR_BYTES = 4096  # error texts
ID_BYTES = 128  # check, agent and region ids
HOST_BYTES = 253  # a DNS name's longest form
URL_BYTES = 2048
NAME_BYTES = 512  # certificate subject and issuer
SHORT_BYTES = 64  # versions, ciphers, addresses, fingerprints, rcodes
DEFAULT_STRING_BYTES = 1024
BANNER_BYTES = 4096  # a tcp probe's banner: tcp.DEFAULT_MAX_BANNER_BYTES
DEFAULT_REPEATED = 32

_P = "probenet.v1."
STRING_BYTES: dict[str, int] = {
    **{f"{_P}ProbeResult.{name}": ID_BYTES for name in ("check_id", "agent_id", "region")},
    f"{_P}ProbeResult.probe": SHORT_BYTES,
    f"{_P}ProbeResult.target": URL_BYTES,
    f"{_P}ProbeResult.error": ERROR_BYTES,
    f"{_P}ProbeResult.failure_host": HOST_BYTES,
    f"{_P}HttpInfo.http_version": SHORT_BYTES,
    f"{_P}HttpInfo.remote_addr": SHORT_BYTES,
    f"{_P}HttpInfo.final_url": URL_BYTES,
    f"{_P}RedirectHop.url": URL_BYTES,
    f"{_P}Certificate.subject": NAME_BYTES,
    f"{_P}Certificate.issuer": NAME_BYTES,
    f"{_P}Certificate.sans": HOST_BYTES,
    f"{_P}Certificate.serial": SHORT_BYTES,
    f"{_P}Certificate.sha256_fingerprint": SHORT_BYTES,
    f"{_P}Certificate.key_type": SHORT_BYTES,
    f"{_P}TlsInfo.version": SHORT_BYTES,
    f"{_P}TlsInfo.cipher": SHORT_BYTES,
    f"{_P}TlsInfo.alpn": SHORT_BYTES,
    f"{_P}TlsInfo.server_name": HOST_BYTES,
    f"{_P}TlsInfo.verify_error": ERROR_BYTES,
    f"{_P}HostFailures.host": HOST_BYTES,
    f"{_P}HostFailures.sample_url": URL_BYTES,
    f"{_P}HostFailures.sample_error": DEFAULT_STRING_BYTES,
    f"{_P}DnsInfo.addresses": SHORT_BYTES,
    f"{_P}DnsInfo.resolver": HOST_BYTES,
    f"{_P}DnsInfo.rcode": SHORT_BYTES,
    f"{_P}DnsInfo.dnssec": SHORT_BYTES,
    f"{_P}DnsInfo.dnssec_chain": HOST_BYTES,
    f"{_P}TcpInfo.remote_addr": SHORT_BYTES,
    f"{_P}TcpInfo.banner": BANNER_BYTES,
    f"{_P}GrpcInfo.service": HOST_BYTES,
    f"{_P}GrpcInfo.serving_status": SHORT_BYTES,
    f"{_P}GrpcInfo.rpc_code": SHORT_BYTES,
    f"{_P}GrpcInfo.remote_addr": SHORT_BYTES,
    f"{_P}IcmpInfo.remote_addr": SHORT_BYTES,
    f"{_P}IcmpInfo.socket": SHORT_BYTES,
}
REPEATED: dict[str, int] = {
    f"{_P}HttpInfo.redirects": 32,
    f"{_P}TlsInfo.chain": 10,
    f"{_P}Certificate.sans": 100,
    f"{_P}PageInfo.failed_hosts": 20,  # sub-resource failure groups, one per host
    f"{_P}DnsInfo.addresses": 32,
    f"{_P}DnsInfo.dnssec_chain": 17,  # dnssec.MAX_CHAIN_DEPTH + the anchor zone
}
# Error texts say that they were cut; other strings are identifiers and are only cut.
_MARKED = {f"{_P}ProbeResult.error", f"{_P}TlsInfo.verify_error", f"{_P}HostFailures.sample_error"}
_MARKER = " ... [{} more bytes cut]"

# The largest result cap_result can leave (a test builds it): what the spool, one stream
# message and the collector must be ready for per result.
MAX_RESULT_BYTES = 448 << 10

_TEXT_TYPES = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)


def cap_result(result: ProbeResult) -> ProbeResult:
    """Cut every string and repeated field of `result` to its limit, in place; return it."""
    _cap_message(result)
    return result


def cap_text(text: str, limit: int, marked: bool = False) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, on a character boundary."""
    data = text.encode()
    if len(data) <= limit:
        return text
    if marked:
        marker = _MARKER.format(len(data) - limit)
        keep = max(0, limit - len(marker.encode()))
        cut = data[:keep].decode("utf-8", "ignore")
        return cut + _MARKER.format(len(data) - len(cut.encode()))
    return data[:limit].decode("utf-8", "ignore")


def _cap_message(message: Message) -> None:
    for field, value in message.ListFields():
        name = field.full_name
        if field.is_repeated:
            limit = REPEATED.get(name, DEFAULT_REPEATED)
            if len(value) > limit:
                del value[limit:]
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value:
                    _cap_message(item)
            elif field.type in _TEXT_TYPES:
                value[:] = [_cap_value(field, item) for item in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            _cap_message(value)
        elif field.type in _TEXT_TYPES:
            setattr(message, field.name, _cap_value(field, value))


def _cap_value(field: FieldDescriptor, value: str | bytes) -> str | bytes:
    limit = STRING_BYTES.get(field.full_name, DEFAULT_STRING_BYTES)
    if isinstance(value, bytes):
        return value[:limit]
    return cap_text(value, limit, field.full_name in _MARKED)
