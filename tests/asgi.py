"""Calling an ASGI app directly: raw header bytes, and a body whose chunks count as the app pulls
them, so a test can tell how much of a body the app read before it answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

Headers = list[tuple[bytes, bytes]]


@dataclass
class Answer:
    """What the app sent back, and how many body chunks it had asked for by then."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    pulled: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


def post(
    app: Any,
    path: str,
    headers: Headers,
    chunks: Iterable[bytes] = (),
    *,
    disconnect_after: int | None = None,
) -> Answer:
    """POST to `app`; the body is sent chunk by chunk, only as the app asks for it.

    With `disconnect_after`, the client goes away after that many chunks.
    """
    answer = Answer()
    pending: Iterator[bytes] = iter(chunks)
    done = False

    async def receive() -> dict[str, Any]:
        nonlocal done
        if done or (disconnect_after is not None and answer.pulled >= disconnect_after):
            return {"type": "http.disconnect"}
        chunk = next(pending, None)
        if chunk is None:
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        answer.pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in message["headers"]
            }
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    asyncio.run(app(scope, receive, send))
    return answer


def mebibytes(count: int) -> Iterator[bytes]:
    """`count` chunks of 1 MiB each, made one at a time."""
    for _ in range(count):
        yield b"x" * (1 << 20)
