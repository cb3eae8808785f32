"""Network namespaces (`ip netns`, veth pairs, static routes), for the lab's `path_break` and the
tests that trace through routers; root only, iproute2 only.

A chain is agent - r1 - ... - rN - target, one /24 per link (10.78.<link>.0/24: .1 on the left,
.2 on the right), forwarding on in the routers, static routes everywhere; names of interfaces
only have to be unique inside a namespace, so every chain uses the same ones. Sockets are
opened inside a namespace by a short-lived thread that enters it (`setns` is per thread), so
the lab's own servers can listen there without a process per namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from collector.errors import CollectorError

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
LINK_PREFIX = "10.78"
IP_TIMEOUT_S = 30
T = TypeVar("T")


class NetnsError(CollectorError):
    """An `ip` command failed, or a namespace could not be entered."""


def unavailable_reason() -> str:
    """Why namespaces cannot be made here ("" when they can)."""
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` to make network namespaces"
    if os.geteuid() != 0:
        return "needs root to make network namespaces"
    probe = f"pn-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace here: {made.stderr.strip()}"
    delete([probe])
    return ""


def ip(*args: str, ns: str = "") -> None:
    command = ["ip", "-n", ns, *args] if ns else ["ip", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=IP_TIMEOUT_S)
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(command)}: {done.stderr.strip() or f'exit {done.returncode}'}")


def run_in(ns: str, command: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        ["ip", "netns", "exec", ns, *command],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        **kwargs,
    )


def sysctl(ns: str, key: str, value: str) -> None:
    """Set a net.* sysctl of namespace `ns` (/proc/sys/net answers for the writer's namespace:
    no procps needed)."""
    path = Path("/proc/sys", *key.split("."))
    try:
        inside(ns, lambda: path.write_text(value))
    except OSError as exc:
        raise NetnsError(f"{ns}: sysctl {key}={value}: {exc}") from exc


def make(names: Sequence[str]) -> None:
    """Fresh namespaces with loopback up; on failure the ones made so far are deleted again."""
    made: list[str] = []
    try:
        for ns in names:
            ip("netns", "add", ns)
            made.append(ns)
            ip("link", "set", "lo", "up", ns=ns)
    except BaseException:
        delete(made)
        raise


def delete(names: Sequence[str]) -> None:
    """Delete namespaces (their veth ends go with them); missing ones are no error."""
    for ns in names:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=IP_TIMEOUT_S)


def existing(prefix: str) -> list[str]:
    """Names of the namespaces starting with `prefix`."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


@contextlib.contextmanager
def namespaces(*names: str) -> Iterator[list[str]]:
    """Fresh namespaces (unique names: this process's pid is added), deleted afterwards."""
    made = [f"pn{os.getpid()}-{name}" for name in names]
    make(made)
    try:
        yield made
    finally:
        delete(made)


def link(a: str, a_addr: str, b: str, b_addr: str, name: str) -> None:
    """A veth pair between namespaces a and b with these CIDR addresses, both ends up."""
    ip("link", "add", f"{name}a", "netns", a, "type", "veth", "peer", "name", f"{name}b", "netns", b)
    ip("addr", "add", a_addr, "dev", f"{name}a", ns=a)
    ip("addr", "add", b_addr, "dev", f"{name}b", ns=b)
    ip("link", "set", f"{name}a", "up", ns=a)
    ip("link", "set", f"{name}b", "up", ns=b)


def chain_address(link_number: int, side: int) -> str:
    """The address on link `link_number` (1 = agent-r1): side 1 is the left end, 2 the right."""
    return f"{LINK_PREFIX}.{link_number}.{side}"


def wire_chain(made: Sequence[str]) -> None:
    """Link existing namespaces agent, r1..rN, target into a routed chain (see the module doc)."""
    links = len(made) - 1
    for i in range(links):
        link(made[i], f"{chain_address(i + 1, 1)}/24", made[i + 1], f"{chain_address(i + 1, 2)}/24", f"v{i}")
    ip("route", "add", "default", "via", chain_address(1, 2), ns=made[0])
    ip("route", "add", "default", "via", chain_address(links, 1), ns=made[-1])
    for r in range(1, links):
        sysctl(made[r], "net.ipv4.ip_forward", "1")
        for net in range(1, links + 1):
            if net < r:  # behind the router's left side
                ip("route", "add", f"{LINK_PREFIX}.{net}.0/24", "via", chain_address(r, 1), ns=made[r])
            elif net > r + 1:  # beyond its right side
                ip("route", "add", f"{LINK_PREFIX}.{net}.0/24", "via", chain_address(r + 1, 2), ns=made[r])


@contextlib.contextmanager
def router_chain(tag: str, routers: int) -> Iterator[list[str]]:
    """A wired chain with `routers` routers; yields the namespace names, agent first and target
    last; the target's address is 10.78.<routers+1>.2."""
    names = ["agent", *(f"r{i}" for i in range(1, routers + 1)), "target"]
    with namespaces(*(f"{tag}{n}" for n in names)) as made:
        wire_chain(made)
        yield made


def bound_socket(ns: str, host: str, port: int, kind: socket.SocketKind) -> socket.socket:
    """An IPv4 socket made inside namespace `ns` and bound to (host, port), for a server there
    (a socket stays in the namespace it was made in)."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        return sock

    return inside(ns, make)


def inside(ns: str, action: Callable[[], T]) -> T:
    """`action()` run by a fresh thread that entered namespace `ns` (setns is per thread), so no
    thread of this process stays there afterwards; its exception is raised here."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with (NETNS_DIR / ns).open("rb") as handle:
                if _LIBC.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise NetnsError(f"cannot enter namespace {ns}: {os.strerror(ctypes.get_errno())}")
            result.append(action())
        except BaseException as exc:  # carried to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name=f"netns-{ns}")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return result[0]


_LIBC = ctypes.CDLL(None, use_errno=True)
