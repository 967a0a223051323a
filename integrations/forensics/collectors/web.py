"""The `http` collector: one GET (or HEAD) with its status, headers and body, secrets masked."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from flows.errors import StepFailed
from flows.evidence.redact import REDACTED, Redactor, is_secret_key
from integrations.forensics.collectors.base import SPEC_CONFIG, Collected, Kit, MiB, Pieces

MASKED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


class HttpSpec(BaseModel):
    """Fetch a URL (a status page, an admin endpoint) and keep the whole answer."""

    model_config = SPEC_CONFIG

    type: Literal["http"] = Field(description="Collector kind: `http`.")
    method: Literal["GET", "HEAD"] = Field(
        default="GET", description="`GET` or `HEAD`: a snapshot only reads."
    )
    url: str = Field(pattern=r"^https?://\S+$", description="Absolute http:// or https:// URL.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Request headers (no secrets: see `header_secrets`)."
    )
    header_secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Header name -> environment variable holding its value, read at run time "
        "and never stored, e.g. `{Authorization: STATUS_API_AUTH}`.",
    )
    timeout_s: float = Field(
        default=10, gt=0, le=300, description="Seconds the whole request may take."
    )
    max_bytes: int = Field(default=MiB, gt=0, description="Bytes of response body kept.")


def collect(spec: HttpSpec, kit: Kit) -> Pieces:
    """Send the request; store status, headers (credentials masked) and body as JSON."""
    import httpx  # loaded on first use: the catalog must stay cheap to import

    secrets = _secret_headers(spec.header_secrets)
    # The server may echo a credential back: the values read from the environment are masked
    # wherever they appear, on top of the run's own redaction.
    known = Redactor(secrets.values())

    def redact(text: str) -> str:
        return kit.redact(known.redact(text)[0])

    where = f"{spec.method} {_safe_url(spec.url)}"
    limit = kit.time_left(spec.timeout_s)
    if limit <= 0:  # httpx reads a timeout of 0 as "do not wait at all"
        raise StepFailed(f"{where} not sent: the step's timeout_s had run out")
    deadline = time.monotonic() + limit
    within = f"{spec.timeout_s:g} s" if limit == spec.timeout_s else "the step's timeout_s"
    try:
        with (
            httpx.Client(timeout=limit) as client,
            client.stream(spec.method, spec.url, headers=spec.headers | secrets) as response,
        ):
            body = bytearray()
            seen = 0
            for chunk in response.iter_bytes():
                if time.monotonic() > deadline:
                    raise StepFailed(f"{where} took more than {within}")
                seen += len(chunk)
                body += chunk[: max(0, spec.max_bytes - len(body))]
            sent = _masked(list((spec.headers | secrets).items()))
            received = _masked(response.headers.multi_items())
            document = {
                "request": {"method": spec.method, "url": spec.url, "headers": sent},
                "status": response.status_code,
                "http_version": response.http_version,
                "headers": received,
                "body": body.decode(response.encoding or "utf-8", errors="replace"),
                "body_bytes": seen,
                "truncated": seen > len(body),
            }
    except httpx.TimeoutException as err:
        raise StepFailed(f"{where} timed out after {within}") from err
    except httpx.HTTPError as err:
        raise StepFailed(f"{where} failed: {err}") from err
    masked = sum(v == REDACTED for _, v in sent + received)
    stored = replace(kit, redact=redact).put_json(document, masked)
    facts = {"status": response.status_code, "truncated": seen > len(body)}
    yield Collected(_safe_url(spec.url), stored, facts)


def _secret_headers(names: dict[str, str]) -> dict[str, str]:
    """Header values read from the environment; a missing variable fails the collector."""
    missing = [var for var in names.values() if not os.environ.get(var)]
    if missing:
        raise StepFailed(f"environment variable {', '.join(missing)} is not set")
    return {header: os.environ[var] for header, var in names.items()}


def _masked(pairs: list[tuple[str, str]]) -> list[list[str]]:
    """Header pairs with credentials masked, every value under a secret-looking name too.

    A list, not a dict: repeated headers (Set-Cookie) are all kept as evidence.
    """
    return [[k, REDACTED if _is_credential(k) else v] for k, v in pairs]


def _is_credential(name: str) -> bool:
    return name.lower() in MASKED_HEADERS or is_secret_key(name)


def _safe_url(url: str) -> str:
    """The URL without credentials, query or fragment, which may carry tokens."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
