"""A loopback HTTP proxy in front of a real server that can hold back the answers to one kind of
request (the request reaches the server and takes effect there, and its client hears nothing
until the proxy is released) or refuse it in the server's place. It makes "the change was made,
and nobody heard back" and "the server said no" happen on purpose, in front of the real server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


class HoldingProxy:
    """Forwards every request to `upstream`; answers to held (method, path) wait for release."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.held: set[tuple[str, str]] = set()
        self.refused: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.released = threading.Event()
        self.forwarded: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HoldingProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def hold(self, method: str, path: str) -> None:
        """Hold back the answers to `method path` (the path without its query) until released."""
        self.held.add((method, path))

    def refuse(self, method: str, path: str, status: int, body: dict[str, Any]) -> None:
        """Answer `method path` with `status` and the JSON `body`, without forwarding it."""
        self.refused[(method, path)] = (status, body)

    def release(self) -> None:
        """Let held answers go (to clients still listening)."""
        self.released.set()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the upstream server keeps its own log."""

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                path = urlsplit(self.path).path
                if (self.command, path) in proxy.refused:
                    status, refusal = proxy.refused[(self.command, path)]
                    self._send(status, {"Content-Type": "application/json"}, json.dumps(refusal))
                    return
                proxy.forwarded.append((self.command, path))
                answer = httpx.request(
                    self.command,
                    proxy.upstream + self.path,
                    content=body,
                    headers=headers,
                    timeout=60,
                )
                if (self.command, path) in proxy.held:
                    proxy.released.wait(300)
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
                self._send(answer.status_code, kept, answer.content)

            def _send(self, status: int, headers: dict[str, str], body: bytes | str) -> None:
                content = body.encode() if isinstance(body, str) else body
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client died while its answer was held: that was the point

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _forward

        return Handler
