"""Cost of judging one presented chain: judge_chain (pyca's verifier) vs OpenSSL's own, same run.

    .venv/bin/python bench/tls_verify.py [--rounds 5] [--n 300]

The chain is leaf <- intermediate <- root (P-256, as most of the web now), trusted through the
system bundle plus the test root, judged for its host name:
  judge_chain   the probe's verdict, uncached (the probe caches it for a minute per chain)
  diagnosis     judge_chain on the same chain served expired: the refused path plus the
                verifier's retries that name the class
  cached        ChainInspector.inspect on a chain seen before (what most probes pay)
  openssl       OpenSSL's own X509_verify_cert on the same DER, called through ctypes in the
                libcrypto Python's ssl module uses: parse (d2i) + verify with the "ssl_server"
                purpose and the host name set, against an X509_STORE of the same anchors (what
                curl does after a handshake)
Rounds alternate the modes so machine noise hits all alike; the median round is printed with
the ratio judge_chain / openssl.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import datetime as dt
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.utils import CryptographyDeprecationWarning

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


class OpenSSLVerifier:
    """X509_verify_cert through ctypes: the baseline, with no Python between the calls."""

    def __init__(self, anchors_der: list[bytes]) -> None:
        lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
        p = ctypes.c_void_p
        for name, args, res in [
            ("d2i_X509", [p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long], p),
            ("X509_free", [p], None),
            ("X509_STORE_new", [], p),
            ("X509_STORE_add_cert", [p, p], ctypes.c_int),
            ("X509_STORE_CTX_new", [], p),
            ("X509_STORE_CTX_free", [p], None),
            ("X509_STORE_CTX_init", [p, p, p, p], ctypes.c_int),
            ("X509_STORE_CTX_set_default", [p, ctypes.c_char_p], ctypes.c_int),
            ("X509_STORE_CTX_get0_param", [p], p),
            ("X509_VERIFY_PARAM_set1_host", [p, ctypes.c_char_p, ctypes.c_size_t], ctypes.c_int),
            ("X509_verify_cert", [p], ctypes.c_int),
            ("OPENSSL_sk_new_null", [], p),
            ("OPENSSL_sk_push", [p, p], ctypes.c_int),
            ("OPENSSL_sk_free", [p], None),
        ]:
            getattr(lib, name).argtypes, getattr(lib, name).restype = args, res
        self.lib = lib
        self.store = lib.X509_STORE_new()
        for der in anchors_der:
            cert = self._d2i(der)
            lib.X509_STORE_add_cert(self.store, cert)
            lib.X509_free(cert)

    def _d2i(self, der: bytes) -> int:
        buf = ctypes.c_char_p(der)
        cert: int | None = self.lib.d2i_X509(None, ctypes.byref(buf), len(der))
        if not cert:
            raise ValueError("d2i_X509 failed")
        return cert

    def verify(self, chain_der: list[bytes], host: bytes) -> bool:
        lib = self.lib
        leaf, rest = self._d2i(chain_der[0]), [self._d2i(d) for d in chain_der[1:]]
        untrusted = lib.OPENSSL_sk_new_null()
        for cert in rest:
            lib.OPENSSL_sk_push(untrusted, cert)
        ctx = lib.X509_STORE_CTX_new()
        try:
            lib.X509_STORE_CTX_init(ctx, self.store, leaf, untrusted)
            lib.X509_STORE_CTX_set_default(ctx, b"ssl_server")
            lib.X509_VERIFY_PARAM_set1_host(lib.X509_STORE_CTX_get0_param(ctx), host, len(host))
            return bool(lib.X509_verify_cert(ctx) == 1)
        finally:
            lib.X509_STORE_CTX_free(ctx)
            lib.OPENSSL_sk_free(untrusted)
            for cert in [leaf, *rest]:
                lib.X509_free(cert)


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

    with warnings.catch_warnings():  # a few system roots have non-positive serials
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        roots = x509.load_pem_x509_certificates(trusted)
    anchors = [c.public_bytes(serialization.Encoding.DER) for c in roots]
    openssl = OpenSSLVerifier(anchors)
    assert openssl.verify(chain, HOST.encode())
    assert not openssl.verify(expired_chain, HOST.encode())

    modes: dict[str, Callable[[], object]] = {
        "judge_chain": lambda: judge_chain(chain, HOST, trusted, now),
        "diagnosis": lambda: judge_chain(expired_chain, HOST, trusted, now),
        "cached": lambda: inspector.inspect(chain, HOST, root.pem),
        "openssl": lambda: openssl.verify(chain, HOST.encode()),
    }
    rounds: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode, fn in modes.items():
            rounds[mode].append(_per_call_us(fn, args.n))
    med = {m: statistics.median(v) for m, v in rounds.items()}
    print(f"chain: leaf <- intermediate <- root (P-256), {trusted.count(b'BEGIN CERTIFICATE')} trust anchors")
    print(f"judge_chain (pyca verifier) {med['judge_chain']:8.1f} us/chain")
    print(f"diagnosis (expired leaf)    {med['diagnosis']:8.1f} us/chain")
    print(f"cached verdict              {med['cached']:8.1f} us/chain")
    print(f"openssl X509_verify_cert    {med['openssl']:8.1f} us/chain")
    print(f"ratio judge_chain/openssl   {med['judge_chain'] / med['openssl']:8.2f}")


if __name__ == "__main__":
    main()
