"""The `http.request` action: call a web endpoint (health check, webhook, internal API).

HTTP is not idempotent by nature and the engine cannot tell a safe endpoint from an unsafe one,
so the action counts as side-effecting whatever the method (drills simulate it unless a step
says `drill: run`). Non-GET requests carry the step's dedupe key as an `Idempotency-Key` header,
which servers following the IETF draft use to apply a retried request once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from flows.contract.actions import Action, ActionContext, Reach
from flows.errors import StepFailed

BODY_CAP = 64 * 1024
"""Bytes of response body kept; the rest is not read (output `truncated` says so)."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Status = Annotated[int, Field(ge=100, le=599)]


class RequestArgs(BaseModel):
    """Arguments of `http.request`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = Field(
        default="GET", description="HTTP method, uppercase."
    )
    url: str = Field(pattern=r"^https?://\S+$", description="Absolute http:// or https:// URL.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    json_: Any = Field(
        default=None, alias="json", description="JSON request body; none is sent when empty."
    )
    timeout_s: float = Field(
        default=10,
        gt=0,
        le=300,
        description="Seconds the whole request may take; the step's own `timeout_s` cuts it short.",
    )
    expect_status: list[Status] | None = Field(
        default=None,
        min_length=1,
        description="Statuses that count as success; another fails the step. Left out: any status.",
    )
    follow_redirects: bool = Field(default=False, description="Follow 3xx redirects.")
    idempotency_key: bool = Field(
        default=True,
        description="Send the step's dedupe key as `Idempotency-Key` on non-GET requests.",
    )


def request(args: RequestArgs, ctx: ActionContext) -> dict[str, Any]:
    """Send one request; return its status, body (JSON parsed when so typed) and `truncated`.

    The request gets its own `timeout_s` or what is left of the step's, whichever is shorter.
    """
    import httpx  # loaded on first use: the catalog must stay cheap to import

    headers = dict(args.headers)
    if args.idempotency_key and args.method not in SAFE_METHODS:
        headers.setdefault("Idempotency-Key", ctx.dedupe_key)
    where = f"{args.method} {_redacted(args.url)}"
    limit = ctx.time_left(args.timeout_s)
    if limit <= 0:  # httpx reads a timeout of 0 as "do not wait at all", not as "no time left"
        raise StepFailed(f"{where} not sent: the step's timeout_s had run out")
    deadline = time.monotonic() + limit
    try:
        with (
            httpx.Client(timeout=limit, follow_redirects=args.follow_redirects) as client,
            client.stream(args.method, args.url, headers=headers, json=args.json_) as response,
        ):
            raw, truncated = _read_capped(response.iter_bytes(), deadline)
            status = response.status_code
            content_type = response.headers.get("content-type", "")
            encoding = response.encoding or "utf-8"
    except (httpx.TimeoutException, TimeoutError) as err:
        within = f"{args.timeout_s:g} s" if limit == args.timeout_s else "the step's timeout_s"
        raise StepFailed(f"{where} timed out after {within}") from err
    except httpx.RequestError as err:
        raise StepFailed(f"{where} failed: {err}") from err
    body = _body(raw, truncated, content_type, encoding)
    if args.expect_status is not None and status not in args.expect_status:
        snippet = body if isinstance(body, str) else json.dumps(body)
        raise StepFailed(
            f"{where} answered {status}, expected {' or '.join(map(str, args.expect_status))}:"
            f" {snippet[:200]}"
        )
    return {"status": status, "body": body, "truncated": truncated}


def _read_capped(chunks: Iterator[bytes], deadline: float) -> tuple[bytes, bool]:
    """Read at most BODY_CAP bytes; httpx's timeout is per read, so also enforce the total."""
    raw = bytearray()
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise TimeoutError
        raw += chunk
        if len(raw) > BODY_CAP:
            return bytes(raw[:BODY_CAP]), True
    return bytes(raw), False


def _body(raw: bytes, truncated: bool, content_type: str, encoding: str) -> Any:
    """The body as JSON when the server says it is JSON and all of it arrived, else as text."""
    text = raw.decode(encoding, errors="replace")
    media = content_type.split(";")[0].strip().lower()
    if not truncated and (media == "application/json" or media.endswith("+json")):
        # A server mislabelling its body still answered: its text is the body then.
        with suppress(ValueError):
            return json.loads(text)
    return text


def _redacted(url: str) -> str:
    """The URL without credentials, query or fragment, which may carry tokens."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


ACTIONS = (
    Action(
        name="http.request",
        args=RequestArgs,
        run=request,
        outputs=("status", "body", "truncated"),
        description="Send an HTTP request and return the status and (capped) body.",
        reach=Reach.OUTSIDE,
    ),
)
