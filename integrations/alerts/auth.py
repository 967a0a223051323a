"""Who sent a webhook: each sender's own proof, checked in constant time.

Every verifier returns None or raises `AuthError` with a short reason safe to log (never a
secret, a signature or a token). Headers arrive with lower-cased names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from integrations.alerts import AuthError

GRAFANA_DEFAULT_HEADERS = ("x-grafana-alerting-signature", "x-grafana-alert-signature")
"""Grafana's documented default signature header, and the one its HMAC sender falls back to."""
CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "x-slack-request-timestamp",
        "x-slack-signature",
        "x-pagerduty-signature",
        *GRAFANA_DEFAULT_HEADERS,
    }
)
"""The headers a verifier reads (besides a configured Grafana one). A request carries each at
most once: with two, which one is checked would depend on the web framework, not on us."""
TIMESTAMP_DIGITS = 12
"""Most digits a Unix timestamp header may have (ten today, eleven from the year 2286): a longer
one is refused before it is read as a number, since Python refuses to convert over 4,300 digits."""


def _bytes(value: str) -> bytes:
    return value.encode("utf-8", "replace")


def _hex_hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest().encode()


def _same(expected: bytes, given: str) -> bool:
    return hmac.compare_digest(expected, _bytes(given.strip().lower()))


def unix_timestamp(raw: str) -> int | None:
    """A header's Unix timestamp in seconds; None unless it is 1 to 12 ASCII digits."""
    raw = raw.strip()
    # isdigit() alone admits "²" and Arabic-Indic digits, which int() then refuses or reads.
    if not raw.isascii() or not raw.isdigit() or len(raw) > TIMESTAMP_DIGITS:
        return None
    return int(raw)


def _fresh_timestamp(raw: str | None, now: float | None, window_s: float, name: str) -> str:
    if not raw:
        raise AuthError(f"missing {name} header")
    raw = raw.strip()
    stamp = unix_timestamp(raw)
    if stamp is None:
        raise AuthError(f"{name} is not a Unix timestamp in seconds")
    current = time.time() if now is None else now
    if abs(current - stamp) > window_s:
        raise AuthError(f"{name} is more than {window_s:g} s away from now (replay or clock skew)")
    return raw


def verify_slack(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    now: float | None = None,
    window_s: float = 300,
) -> None:
    """Slack's v0 signature: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`, timestamp fresh."""
    if not secret:
        raise AuthError("no Slack signing secret configured")
    timestamp = _fresh_timestamp(
        headers.get("x-slack-request-timestamp"), now, window_s, "x-slack-request-timestamp"
    )
    signature = headers.get("x-slack-signature")
    if not signature:
        raise AuthError("missing x-slack-signature header")
    expected = b"v0=" + _hex_hmac(secret, b"v0:" + timestamp.encode() + b":" + body)
    if not _same(expected, signature):
        raise AuthError("Slack signature does not match")


def verify_pagerduty(headers: Mapping[str, str], body: bytes, secrets: Sequence[str]) -> None:
    """PagerDuty V3: some `v1=<hex HMAC-SHA256(body)>` in the header matches some secret."""
    secrets = [s for s in secrets if s]
    if not secrets:
        raise AuthError("no PagerDuty webhook secret configured")
    header = headers.get("x-pagerduty-signature")
    if not header:
        raise AuthError("missing x-pagerduty-signature header")
    given = [
        part.strip()[3:] for part in header.split(",") if part.strip().lower().startswith("v1=")
    ]
    if not given:
        raise AuthError("x-pagerduty-signature holds no v1 signature")
    expected = [_hex_hmac(secret, body) for secret in secrets]
    # Compare every pair (no early exit), so timing says nothing about which one matched.
    matches = [_same(want, got) for want in expected for got in given]
    if not any(matches):
        raise AuthError("PagerDuty signature does not match")


def verify_grafana(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    header_name: str = "x-grafana-alerting-signature",
    timestamp_header: str | None = None,
    now: float | None = None,
    window_s: float = 300,
) -> None:
    """Grafana's HMAC: hex HMAC-SHA256 of the body, or of `{timestamp}:{body}` with a timestamp."""
    if not secret:
        raise AuthError("no Grafana webhook secret configured")
    header_name = header_name.lower()
    names = GRAFANA_DEFAULT_HEADERS if header_name in GRAFANA_DEFAULT_HEADERS else (header_name,)
    signature = next((headers[n] for n in names if headers.get(n)), None)
    if signature is None:
        raise AuthError(f"missing {header_name} header")
    message = body
    if timestamp_header:
        name = timestamp_header.lower()
        timestamp = _fresh_timestamp(headers.get(name), now, window_s, name)
        message = timestamp.encode() + b":" + body
    if not _same(_hex_hmac(secret, message), signature):
        raise AuthError("Grafana signature does not match")


def verify_bearer(headers: Mapping[str, str], token: str) -> None:
    """`Authorization: Bearer <token>`, or Basic auth whose password is the token (any user)."""
    if not token:
        raise AuthError("no webhook token configured")
    scheme, _, credentials = (headers.get("authorization") or "").strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        given = _bytes(credentials)
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            raise AuthError("malformed Basic credentials") from None
        given = decoded.partition(b":")[2]
    else:
        raise AuthError("missing Bearer or Basic authorization")
    if not hmac.compare_digest(_bytes(token), given):
        raise AuthError("webhook token does not match")
