"""Map low-level errors to failure classes, once, close to where they arise."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

from probenet.v1.probe_pb2 import FailureClass

# OpenSSL X509_V_ERR_* codes seen in ssl.SSLCertVerificationError.verify_code.
_VERIFY_CODES: dict[int, FailureClass.ValueType] = {
    9: FailureClass.TLS_CERT_NOT_YET_VALID,
    10: FailureClass.TLS_CERT_EXPIRED,
    18: FailureClass.TLS_SELF_SIGNED,
    19: FailureClass.TLS_SELF_SIGNED,
    20: FailureClass.TLS_UNTRUSTED,
    21: FailureClass.TLS_UNTRUSTED,
    2: FailureClass.TLS_UNTRUSTED,
    62: FailureClass.TLS_HOSTNAME_MISMATCH,
}

# Which class a timeout gets depends on the phase it interrupted.
TIMEOUT_BY_PHASE: dict[str, FailureClass.ValueType] = {
    "dns": FailureClass.DNS_TIMEOUT,
    "connect": FailureClass.TCP_TIMEOUT,
    # The target accepted but did not say what was expected in time: its banner is the problem.
    "expect": FailureClass.TCP_EXPECT_FAILED,
}


class ProbeFailure(Exception):
    """Raised inside a probe to end it with a failure class; turned into result data at the boundary."""

    def __init__(self, failure_class: FailureClass.ValueType, message: str, host: str = "") -> None:
        super().__init__(message)
        self.failure_class = failure_class
        self.message = message
        self.host = host


def classify(exc: BaseException, phase: str = "") -> tuple[FailureClass.ValueType, str]:
    """Return (failure class, human message) for an exception raised while probing."""
    if isinstance(exc, ProbeFailure):
        return exc.failure_class, exc.message
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return TIMEOUT_BY_PHASE.get(phase, FailureClass.TIMEOUT), f"timed out during {phase or 'probe'}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        return _VERIFY_CODES.get(
            code, FailureClass.TLS_UNTRUSTED
        ), f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return FailureClass.TLS_HANDSHAKE, f"TLS error: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
            return FailureClass.DNS_NXDOMAIN, f"name not found: {exc.strerror}"
        return FailureClass.DNS_ERROR, f"name resolution failed: {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED
    ):
        return FailureClass.TCP_REFUSED, "connection refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return FailureClass.TCP_RESET, "connection reset by peer"
    if isinstance(exc, asyncio.LimitOverrunError):
        return FailureClass.HTTP_PROTOCOL, "response line over the size limit"
    if isinstance(exc, asyncio.IncompleteReadError):
        return FailureClass.HTTP_PROTOCOL, "connection closed before the response was complete"
    if isinstance(exc, OSError):
        if exc.errno in (errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH):
            return FailureClass.TCP_TIMEOUT, f"connect failed: {exc.strerror}"
        return FailureClass.TCP_ERROR, f"network error: {exc.strerror or exc}"
    return FailureClass.INTERNAL, f"{type(exc).__name__}: {exc}"
