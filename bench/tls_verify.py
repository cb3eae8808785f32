"""Cost of judging one presented chain: judge_chain (pyca's verifier) vs OpenSSL's own, same run.

    .venv/bin/python bench/tls_verify.py [--rounds 5] [--n 300]

The chain is leaf <- intermediate <- root (P-256, as most of the web now), trusted through the
system bundle plus the test root, judged for its host name:
  judge_chain   the probe's verdict, uncached (the probe caches it for a minute per chain)
  diagnosis     judge_chain on the same chain served expired: the refused path plus the
                verifier's retries that name the class
  cached        ChainInspector.inspect on a chain seen before (what most probes pay)
  openssl       OpenSSL's chain + host name verification, measured as the difference between
                in-memory handshakes with CERT_REQUIRED and with CERT_NONE (same contexts reused,
                so it is X509_verify_cert and the host check, not context set-up)
Rounds alternate the modes so machine noise hits all alike; the median round is printed with
the ratio judge_chain / openssl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import serialization

from probe_agent.probes.tlsinspect import ChainInspector, judge_chain
from tests.probe_agent.probes.certs import DAY, NOW, Issued, make_ca, make_leaf

HOST = "bench.test"


def _der(issued: Issued) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER) for c in (issued.cert, *issued.chain)]


def _per_call_us(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> None:
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=HOST)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done_c = done_s = False
    while not (done_c and done_s):
        done_c = done_c or _step(c)
        s_in.write(c_out.read())
        done_s = done_s or _step(s)
        c_in.write(s_out.read())


def _step(side: ssl.SSLObject) -> bool:
    try:
        side.do_handshake()
    except ssl.SSLWantReadError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=300, help="calls per mode per round")
    args = parser.parse_args()

    root = make_ca("bench root")
    intermediate = make_ca("bench intermediate", root)
    leaf = make_leaf([HOST], intermediate)
    expired = make_leaf([HOST], intermediate, not_before=NOW - 90 * DAY, not_after=NOW - DAY)
    inspector = ChainInspector()
    trusted = inspector.anchors(root.pem)  # system bundle + the test root, parsed once
    chain, expired_chain = _der(leaf), _der(expired)
    now = dt.datetime.now(dt.UTC)
    assert judge_chain(chain, HOST, trusted, now).verified
    assert not judge_chain(expired_chain, HOST, trusted, now).verified
    inspector.inspect(chain, HOST, root.pem)

    tmp = Path(tempfile.mkdtemp())
    server = leaf.server_context(tmp, "bench")
    strict = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    strict.load_verify_locations(cadata=trusted.decode())
    lax = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    lax.check_hostname, lax.verify_mode = False, ssl.CERT_NONE
    for ctx in (strict, lax):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    _handshake(strict, server)  # proves OpenSSL accepts the chain too

    modes: dict[str, Callable[[], object]] = {
        "judge_chain": lambda: judge_chain(chain, HOST, trusted, now),
        "diagnosis": lambda: judge_chain(expired_chain, HOST, trusted, now),
        "cached": lambda: inspector.inspect(chain, HOST, root.pem),
        "handshake_verify": lambda: _handshake(strict, server),
        "handshake_noverify": lambda: _handshake(lax, server),
    }
    rounds: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode, fn in modes.items():
            rounds[mode].append(_per_call_us(fn, args.n))
    med = {m: statistics.median(v) for m, v in rounds.items()}
    openssl = max(med["handshake_verify"] - med["handshake_noverify"], 0.001)
    print(f"chain: leaf <- intermediate <- root (P-256), {trusted.count(b'BEGIN CERTIFICATE')} trust anchors")
    print(f"judge_chain (pyca verifier) {med['judge_chain']:8.1f} us/chain")
    print(f"diagnosis (expired leaf)    {med['diagnosis']:8.1f} us/chain")
    print(f"cached verdict              {med['cached']:8.1f} us/chain")
    print(
        f"openssl verify              {openssl:8.1f} us/chain "
        f"(handshake {med['handshake_verify']:.0f} us verified vs {med['handshake_noverify']:.0f} us not)"
    )
    print(f"ratio judge_chain/openssl   {med['judge_chain'] / openssl:8.2f}")


if __name__ == "__main__":
    main()
