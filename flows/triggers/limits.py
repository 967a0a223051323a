"""What a request may be before any work is done for it: its headers once, its body bounded.

The body is read as it streams, chunk by chunk, and reading stops one byte past the limit: an
oversized upload (a chunked one declares no length at all) never sits in memory whole, and the
rest of it is never read. Every odd header is a refusal with a 4xx and a reason, never a 500.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from starlette.requests import ClientDisconnect, Request

from integrations.alerts.payload import MAX_BODY

FRAMING_HEADERS = frozenset({"content-length", "content-type"})
"""Headers that say what the body is: one of each, or the body means two things."""


class Refused(Exception):
    """The request is refused before any work: `status` and `reason` are the answer, `kind` the
    metric's reason label; `unread` when the refusal came before the body was all read."""

    def __init__(self, status: int, reason: str, kind: str, *, unread: bool = False) -> None:
        super().__init__(reason)
        self.status, self.reason, self.kind, self.unread = status, reason, kind, unread


class SenderGone(Exception):
    """The sender closed the connection before its body was all sent: nobody awaits an answer."""

    def __init__(self, received: int) -> None:
        super().__init__(f"the sender went away after {received} bytes of the body")
        self.received = received


def request_headers(pairs: Iterable[tuple[str, str]], once: Collection[str]) -> dict[str, str]:
    """Headers by lower-cased name; Refused (400) when one of `once` comes more than once."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        name = name.lower()
        if name in headers and (name in once or name in FRAMING_HEADERS):
            reason = f"the {name} header is sent more than once: send it once"
            raise Refused(400, reason, "bad_header", unread=True)
        headers[name] = value
    return headers


def declared_length(headers: Mapping[str, str], limit: int = MAX_BODY) -> int | None:
    """The Content-Length, when one is given; Refused when it is no number (400) or over `limit`
    (413), which is said before a byte of the body is read."""
    value = headers.get("content-length")
    if value is None:
        return None
    digits = value.strip()
    # isdigit() alone admits "²"; and a number of thousands of digits cannot even be converted.
    if not digits or not digits.isascii() or not digits.isdigit():
        reason = "the content-length header is not a number of bytes"
        raise Refused(400, reason, "bad_header", unread=True)
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(limit)) or int(significant) > limit:
        raise Refused(413, _too_large(limit), "too_large", unread=True)
    return int(significant)


async def read_body(request: Request, headers: Mapping[str, str], limit: int = MAX_BODY) -> bytes:
    """The body, read as it streams and never past `limit` + 1 bytes.

    Refused (413) as soon as it is over the limit, the rest left unread; SenderGone when the
    sender disconnects before the end.
    """
    declared_length(headers, limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise Refused(413, _too_large(limit), "too_large", unread=True)
    except ClientDisconnect:
        raise SenderGone(len(body)) from None
    return bytes(body)


def body_unread(headers: Mapping[str, str]) -> bool:
    """Whether a request refused before its body was read has one on the wire."""
    return headers.get("content-length", "0").strip() not in ("", "0") or (
        "chunked" in headers.get("transfer-encoding", "").lower()
    )


def _too_large(limit: int) -> str:
    return f"payload too large: the body may be at most {limit} bytes"
