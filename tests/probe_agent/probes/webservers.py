"""Debian's web servers (nginx, Apache, Caddy, nghttpd) started on 127.0.0.1 for probe tests.

Each runs in the foreground as a child process on a free port, with a certificate made in the
test and a document root the test fills, and is stopped (terminated, then killed) afterwards.
Installed by .ci/install-servers.sh. Apache drops root privileges to www-data, so the site
lives in a world-readable directory of its own rather than pytest's private tmp_path.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.probe_agent.probes.certs import Issued

START_TIMEOUT_S = 15.0
APACHE_MODULES = ("mpm_event", "authz_core", "mime", "dir", "headers", "socache_shmcb", "ssl", "http2")
SERVERS = ("nginx", "apache", "caddy")


@dataclass
class Site:
    """A document root and the certificate files for one server run."""

    root: Path
    docroot: Path
    certfile: Path
    keyfile: Path


@dataclass
class WebServer:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str = "/", host: str = "web.test") -> str:
        return f"https://{host}:{self.port}{path}"


@contextlib.contextmanager
def site(leaf: Issued) -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="probenet-web-"))
    try:
        root.chmod(0o755)
        docroot = root / "htdocs"
        docroot.mkdir(mode=0o755)
        certfile, keyfile = leaf.write_files(root, "server")
        for path in (certfile, keyfile):
            path.chmod(0o644)  # a throwaway test key, read by servers that drop privileges
        yield Site(root, docroot, certfile, keyfile)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {_tail(log)}")
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.settimeout(0.2)
            sock.connect(("127.0.0.1", port))
            return
        time.sleep(0.05)
    raise RuntimeError(f"server not listening on {port} after {START_TIMEOUT_S}s: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def _running(
    name: str, argv: list[str], port: int, s: Site, env: dict[str, str] | None = None
) -> Iterator[WebServer]:
    log = s.root / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=s.root, env=env, start_new_session=True
        )
    try:
        _wait_listening(port, process, log)
        yield WebServer(name, port, process, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def nginx(
    s: Site, *, http2: bool = True, keepalive: bool = True, extra: str = ""
) -> contextlib.AbstractContextManager[WebServer]:
    port = free_port()
    temp = s.root / "nginx-temp"
    temp.mkdir(exist_ok=True)
    conf = s.root / "nginx.conf"
    conf.write_text(
        f"""daemon off;
worker_processes 1;
pid {s.root}/nginx.pid;
error_log {s.root}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    types {{ text/html html; text/css css; image/png png; application/octet-stream bin; }}
    keepalive_timeout {"60" if keepalive else "0"};
    server {{
        listen 127.0.0.1:{port} ssl{" http2" if http2 else ""};
        ssl_certificate {s.certfile};
        ssl_certificate_key {s.keyfile};
        root {s.docroot};
        {extra}
    }}
}}
"""
    )
    return _running("nginx", ["/usr/sbin/nginx", "-c", str(conf), "-p", str(s.root)], port, s)


def apache(s: Site) -> contextlib.AbstractContextManager[WebServer]:
    port = free_port()
    user = "www-data" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
    modules = "\n".join(f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so" for m in APACHE_MODULES)
    conf = s.root / "apache2.conf"
    conf.write_text(
        f"""ServerRoot {s.root}
ServerName web.test
PidFile {s.root}/apache2.pid
ErrorLog {s.root}/apache2-error.log
Mutex file:{s.root} default
DefaultRuntimeDir {s.root}
{modules}
User {user}
Group {user}
Listen 127.0.0.1:{port}
TypesConfig /etc/mime.types
DocumentRoot {s.docroot}
<Directory {s.docroot}>
    Require all granted
</Directory>
Protocols h2 http/1.1
SSLEngine on
SSLCertificateFile {s.certfile}
SSLCertificateKeyFile {s.keyfile}
"""
    )
    return _running("apache", ["/usr/sbin/apache2", "-f", str(conf), "-DFOREGROUND"], port, s)


def caddy(s: Site) -> contextlib.AbstractContextManager[WebServer]:
    port = free_port()
    conf = s.root / "caddy.json"
    conf.write_text(
        f"""{{
  "admin": {{"disabled": true, "config": {{"persist": false}}}},
  "storage": {{"module": "file_system", "root": "{s.root}/caddy-data"}},
  "apps": {{
    "http": {{"servers": {{"probe": {{
      "listen": ["127.0.0.1:{port}"],
      "automatic_https": {{"disable": true}},
      "tls_connection_policies": [{{}}],
      "routes": [{{"handle": [{{"handler": "file_server", "root": "{s.docroot}"}}]}}]
    }}}}}},
    "tls": {{"certificates": {{"load_files": [{{"certificate": "{s.certfile}", "key": "{s.keyfile}"}}]}}}}
  }}
}}
"""
    )
    env = {**os.environ, "HOME": str(s.root), "XDG_DATA_HOME": str(s.root), "XDG_CONFIG_HOME": str(s.root)}
    return _running("caddy", ["/usr/bin/caddy", "run", "--config", str(conf)], port, s, env)


def nghttpd(s: Site) -> contextlib.AbstractContextManager[WebServer]:
    """HTTP/2 only: a client that cannot speak h2 gets nothing from it."""
    port = free_port()
    argv = [
        "/usr/sbin/nghttpd",
        "--address=127.0.0.1",
        f"--htdocs={s.docroot}",
        str(port),
        str(s.keyfile),
        str(s.certfile),
    ]
    return _running("nghttpd", argv, port, s)


STARTERS: dict[str, Callable[[Site], contextlib.AbstractContextManager[WebServer]]] = {
    "nginx": nginx,
    "apache": apache,
    "caddy": caddy,
}
