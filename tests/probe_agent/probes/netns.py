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


def router_chain(tag: str, routers: int) -> contextlib.AbstractContextManager[list[str]]:
    """agent - r1 - ... - rN - target, one /24 per link (10.78.<link>.0/24: .1 left, .2 right),
    forwarding on in the routers, static routes everywhere. Yields the namespace names, agent
    first and target last; the target's address is 10.78.<routers+1>.2."""
    return _chain(tag, routers)


@contextlib.contextmanager
def _chain(tag: str, routers: int) -> Iterator[list[str]]:
    names = ["agent", *(f"r{i}" for i in range(1, routers + 1)), "target"]
    with namespaces(*(f"{tag}{n}" for n in names)) as made:
        links = len(made) - 1
        for i in range(links):
            link(made[i], f"10.78.{i + 1}.1/24", made[i + 1], f"10.78.{i + 1}.2/24", f"{tag}{i}")
        ip("route", "add", "default", "via", "10.78.1.2", ns=made[0])
        ip("route", "add", "default", "via", f"10.78.{links}.1", ns=made[-1])
        for r in range(1, links):
            sysctl(made[r], "net.ipv4.ip_forward", "1")
            for net in range(1, links + 1):
                if net < r:  # behind the router's left side
                    ip("route", "add", f"10.78.{net}.0/24", "via", f"10.78.{r}.1", ns=made[r])
                elif net > r + 1:  # beyond its right side
                    ip("route", "add", f"10.78.{net}.0/24", "via", f"10.78.{r + 1}.2", ns=made[r])
        yield made
