"""Network namespaces made by a test (`ip netns`, veth pairs), removed after; root only.

Tests that need them skip with the reason when the process cannot create namespaces (not
root, no `ip`): CI runs as root, so there they always run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence


def unavailable_reason() -> str:
    """Why namespaces cannot be made here ("" when they can)."""
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` to make network namespaces"
    if os.geteuid() != 0:
        return "needs root to make network namespaces (CI runs the tests as root)"
    probe = f"pn-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return ""


def ip(*args: str, ns: str = "") -> None:
    command = ["ip", "-n", ns, *args] if ns else ["ip", *args]
    subprocess.run(command, check=True, capture_output=True, text=True)


def run_in(ns: str, command: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        ["ip", "netns", "exec", ns, *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        **kwargs,
    )


@contextlib.contextmanager
def namespaces(*names: str) -> Iterator[list[str]]:
    """Fresh namespaces (unique names: the test's pid is added), loopback up; deleted afterwards."""
    made = [f"pn{os.getpid()}-{name}" for name in names]
    try:
        for ns in made:
            ip("netns", "add", ns)
            ip("link", "set", "lo", "up", ns=ns)
        yield made
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def link(a: str, a_addr: str, b: str, b_addr: str, name: str) -> None:
    """A veth pair between namespaces a and b with these CIDR addresses, both ends up."""
    ip("link", "add", f"{name}a", "netns", a, "type", "veth", "peer", "name", f"{name}b", "netns", b)
    ip("addr", "add", a_addr, "dev", f"{name}a", ns=a)
    ip("addr", "add", b_addr, "dev", f"{name}b", ns=b)
    ip("link", "set", f"{name}a", "up", ns=a)
    ip("link", "set", f"{name}b", "up", ns=b)


def sysctl(ns: str, key: str, value: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"], check=True, capture_output=True
    )
