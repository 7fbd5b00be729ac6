"""A loopback HTTP server for the cloud-only plugins (Vertex AI ranking, Pinecone).

It records every request (method, path, headers, exact body bytes) and answers with what
the test's ``handler(request) -> (status, json_body)`` returns, so a test asserts the wire
bytes a plugin sends and feeds it the replies the real API gives.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[[Request], tuple[int, Any]]


@dataclass
class LoopbackServer:
    handler: Handler
    requests: list[Request] = field(default_factory=list)
    #: False: HTTP/1.0, each connection closed after its reply (a client whose constructor
    #: fails never closes its pool, and an idle kept-alive socket would outlive the test).
    keep_alive: bool = True
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f'http://{host}:{port}'

    def start(self) -> LoopbackServer:
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1' if self.keep_alive else 'HTTP/1.0'

            def _serve(self) -> None:
                length = int(self.headers.get('Content-Length') or 0)
                request = Request(
                    self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
                )
                outer.requests.append(request)
                status, reply = outer.handler(request)
                data = (
                    b''
                    if reply is None
                    else (reply if isinstance(reply, bytes) else json.dumps(reply).encode())
                )
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])
