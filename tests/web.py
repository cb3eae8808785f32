"""Small threaded HTTP(S) servers on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import contextlib
import http.server
import ssl
import threading
from collections.abc import Callable, Iterator

import trustme

# (path) -> (status, body, content type or "")
Route = Callable[[str], tuple[int, bytes, str]]


def handler_for(route: Route) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body, content_type = route(self.path)
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serving(route: Route, cert: trustme.LeafCert | None = None) -> Iterator[int]:
    """Serve `route` (over TLS with `cert` when given) and yield the port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(route))
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
