"""Hot reload of the collector's config file: on change (mtime polled every second) or SIGHUP.

A good file is handed to `apply` (the collector swaps it in and tells every agent stream, so
agents get their new checks without restarting). A bad file is refused with file, key and reason in the log and the
previous config stays active. Settings that shape sockets or the store (listen, tls, api,
store, insecure) are read once at start: a change to them is logged as needing a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from collector.config import CollectorConfig, load_config
from collector.errors import ConfigError

log = logging.getLogger(__name__)

POLL_S = 1.0
RESTART_ONLY = ("listen", "insecure", "tls", "api", "store", "notify")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


Current = Callable[[], CollectorConfig]
Apply = Callable[[CollectorConfig], Awaitable[None]]


async def reload_once(current: Current, apply: Apply, path: Path) -> bool:
    """Load `path`; on success hand it to `apply`. True if the new config is active."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        log.error(
            "config reload refused, previous config stays active: file=%s key=%s reason=%s",
            exc.file,
            exc.key,
            exc.reason,
        )
        return False
    old = current()
    for name in RESTART_ONLY:
        if getattr(old, name) != getattr(config, name):
            log.warning("config %s: %r changed; takes effect at the next restart", path, name)
    log.info("config %s reloaded: %d checks, version %s", path, len(config.checks), config.checks_version)
    await apply(_keep_restart_only(old, config))
    return True


def _keep_restart_only(old: CollectorConfig, new: CollectorConfig) -> CollectorConfig:
    return dataclasses.replace(new, **{name: getattr(old, name) for name in RESTART_ONLY})


async def watch_config(current: Current, apply: Apply, poll_s: float = POLL_S) -> None:
    """Run until cancelled: reload when the file changes or on SIGHUP."""
    path = Path(current().source)
    if _stamp(path) is None:
        return
    hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, hup.set)
    seen = _stamp(path)
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hup.wait(), poll_s)
            now = _stamp(path)
            if hup.is_set() or (now is not None and now != seen):
                if hup.is_set():
                    log.info("SIGHUP: reloading %s", path)
                hup.clear()
                seen = now
                await reload_once(current, apply, path)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
