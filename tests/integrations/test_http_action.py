"""The http.request action against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from flows.errors import StepFailed
from integrations.http import BODY_CAP

RunAction = Callable[..., dict[str, Any]]


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    received: list[Received] = field(default_factory=list)


class FakeServer(ThreadingHTTPServer):
    received: list[Received]
    release: threading.Event


class Handler(BaseHTTPRequestHandler):
    """Routes: /json, /text, /big, /status/<n>, /slow (never answers), /drip (a byte at a time)."""

    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        self.server.received.append(Received(self.command, self.path, dict(self.headers), body))
        route = self.path.split("?")[0]
        if route == "/slow":
            self.server.release.wait(10)
        elif route == "/drip":
            self._drip()
        elif route == "/json":
            self._send(200, "application/json; charset=utf-8", json.dumps({"ok": True}).encode())
        elif route == "/echo":
            self._send(200, "application/json", body)
        elif route == "/big":
            self._send(200, "text/plain", b"a" * (BODY_CAP * 3))
        elif route.startswith("/status/"):
            self._send(int(route.rsplit("/", 1)[1]), "text/plain", b"nope")
        else:
            self._send(200, "text/plain; charset=utf-8", "héllo".encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        try:
            while not self.server.release.wait(0.05):
                self.wfile.write(b".")
                self.wfile.flush()
        except OSError:
            return  # the client gave up, as the test wants


@pytest.fixture
def server() -> Iterator[Server]:
    """A real HTTP server on a free loopback port, recording every request."""
    httpd = FakeServer(("127.0.0.1", 0), Handler)
    httpd.received = []
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", httpd.received)
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_json_body_is_parsed(run_action: RunAction, server: Server) -> None:
    """A JSON response comes back as data, with its status."""
    outputs = run_action("http.request", {"url": f"{server.url}/json"})
    assert outputs == {"status": 200, "body": {"ok": True}, "truncated": False}


def test_text_body_is_decoded_with_its_charset(run_action: RunAction, server: Server) -> None:
    """A text response comes back as a string decoded with the declared charset."""
    assert run_action("http.request", {"url": f"{server.url}/text"})["body"] == "héllo"


def test_large_body_is_capped(run_action: RunAction, server: Server) -> None:
    """A body past the cap is cut at the cap and marked truncated."""
    outputs = run_action("http.request", {"url": f"{server.url}/big"})
    assert (len(outputs["body"]), outputs["truncated"]) == (BODY_CAP, True)


def test_post_sends_json_headers_and_idempotency_key(run_action: RunAction, server: Server) -> None:
    """A POST carries its JSON body, the given headers and the step's dedupe key."""
    with_ = {
        "method": "POST",
        "url": f"{server.url}/echo",
        "json": {"service": "api"},
        "headers": {"X-Team": "sec"},
    }
    assert run_action("http.request", with_)["body"] == {"service": "api"}
    [request] = server.received
    assert (request.headers["X-Team"], request.headers["Idempotency-Key"]) == (
        "sec",
        "inc-1:step-1",
    )


def test_get_sends_no_idempotency_key(run_action: RunAction, server: Server) -> None:
    """A GET, safe by definition, carries no Idempotency-Key."""
    run_action("http.request", {"url": f"{server.url}/json"})
    assert "Idempotency-Key" not in server.received[0].headers


def test_any_status_passes_without_expect_status(run_action: RunAction, server: Server) -> None:
    """Without expect_status an error status is returned, not raised."""
    assert run_action("http.request", {"url": f"{server.url}/status/500"})["status"] == 500


def test_expected_status_passes(run_action: RunAction, server: Server) -> None:
    """A status listed in expect_status is a success, even a 404."""
    with_ = {"url": f"{server.url}/status/404", "expect_status": [404]}
    assert run_action("http.request", with_)["status"] == 404


def test_unexpected_status_fails_the_step(run_action: RunAction, server: Server) -> None:
    """A status outside expect_status fails the step, naming status and body."""
    with_ = {"url": f"{server.url}/status/503", "expect_status": [200, 201]}
    with pytest.raises(StepFailed, match=r"answered 503, expected 200 or 201: nope"):
        run_action("http.request", with_)


def test_failure_message_leaves_out_the_query(run_action: RunAction, server: Server) -> None:
    """Query strings (which may carry tokens) stay out of failure messages."""
    with_ = {"url": f"{server.url}/status/500?token=s3cret", "expect_status": [200]}
    with pytest.raises(StepFailed) as failure:
        run_action("http.request", with_)
    assert "s3cret" not in str(failure.value)


def test_silent_server_times_out(run_action: RunAction, server: Server) -> None:
    """A server that never answers fails the step once timeout_s has passed."""
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"timed out after 0\.3 s"):
        run_action("http.request", {"url": f"{server.url}/slow", "timeout_s": 0.3})
    assert time.monotonic() - started < 3


def test_dripping_server_times_out(run_action: RunAction, server: Server) -> None:
    """A body that keeps trickling in is cut off at timeout_s, though each read is quick."""
    started = time.monotonic()
    with pytest.raises(StepFailed, match="timed out"):
        run_action("http.request", {"url": f"{server.url}/drip", "timeout_s": 0.5})
    assert time.monotonic() - started < 3


def test_refused_connection_fails_the_step(run_action: RunAction) -> None:
    """Nothing listening on the port fails the step with the connection error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StepFailed, match=f"GET http://127.0.0.1:{port}/ failed"):
        run_action("http.request", {"url": f"http://127.0.0.1:{port}/"})
