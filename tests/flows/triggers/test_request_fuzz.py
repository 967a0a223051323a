"""Fuzzing whole requests through the app: any headers, any body, cut off or not, get an answer
in 2xx or 4xx, never a 500 nor an exception out of the app."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flows.engine.settings import Settings
from flows.triggers.app import build_app
from flows.triggers.server import load_library, make_server
from tests.asgi import Headers, post
from tests.flows.triggers.test_slack_server import command_body
from tests.support import FIXTURES

LIBRARY = FIXTURES / "library"
PAYLOADS = Path(__file__).parents[2] / "integrations" / "alerts" / "payloads"
TOKEN = "hook-token-5d2c"
SECRETS = {"pagerduty": "pd-secret-77", "grafana": "gf-secret-31", "slack": "slack-signing-9f1e"}
PATHS = [
    "/alerts/alertmanager",
    "/alerts/grafana",
    "/alerts/datadog",
    "/alerts/pagerduty",
    "/alerts/generic",
    "/alerts/nagios",
    "/slack/commands",
    "/slack/interactions",
]
NAMES = [
    b"authorization",
    b"x-slack-request-timestamp",
    b"x-slack-signature",
    b"x-pagerduty-signature",
    b"x-grafana-alerting-signature",
    b"x-grafana-alert-signature",
    b"x-grafana-timestamp",
    b"x-webhook-id",
    b"content-length",
    b"content-type",
    b"transfer-encoding",
    b"x-forwarded-for",
]
ANSWERS = {200, 202, 400, 401, 404, 409, 413, 422}
CASES = 1200


def hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def odd_value(rng: random.Random) -> bytes:
    """A header value of the kinds that broke servers: huge numbers, bytes past ASCII, signs,
    superscripts, near-misses of the real schemes."""
    choices: list[Any] = [
        lambda: b"9" * rng.choice([11, 13, 4300, 4301, 9000]),
        lambda: bytes(rng.randint(0x20, 0xFF) for _ in range(rng.randint(0, 40))),
        lambda: rng.choice([b"", b" ", b"-1", b"+5", b"1e9", b"0x10", b"\xb2\xb3", b"\t7"]),
        lambda: str(int(time.time()) + rng.randint(-400, 400)).encode(),
        lambda: b"Bearer " + rng.choice([TOKEN.encode(), b"", b"\xff" * 3, b"x" * 5000]),
        lambda: b"Basic " + base64.b64encode(rng.randbytes(rng.randint(0, 30))),
        lambda: b"Basic " + bytes(rng.randint(0x80, 0xFF) for _ in range(8)),
        lambda: b"v0=" + rng.randbytes(32).hex().encode(),
        lambda: b",".join(b"v1=" + rng.randbytes(32).hex().encode() for _ in range(3)),
        lambda: rng.choice([b"chunked", b"gzip, chunked", b"identity"]),
        lambda: str(rng.randint(0, 1 << 21)).encode(),
    ]
    return rng.choice(choices)()


def random_body(rng: random.Random, real: list[bytes]) -> bytes:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(real)
    if roll < 0.7:
        sample = rng.choice(real)
        return sample[: rng.randrange(len(sample) + 1)]
    if roll < 0.8:
        return b"command=%2Frunbook&text=" + rng.randbytes(rng.randint(0, 20)).hex().encode()
    return rng.randbytes(rng.randint(0, 200))


def signed_right(rng: random.Random, path: str, body: bytes) -> Headers:
    """Headers that pass this endpoint's check, so the fuzz reaches the parsers and handlers."""
    now = str(int(time.time()))
    if path.startswith("/slack/"):
        signature = "v0=" + hex_hmac(SECRETS["slack"], f"v0:{now}:".encode() + body)
        return [
            (b"x-slack-request-timestamp", now.encode()),
            (b"x-slack-signature", signature.encode()),
        ]
    if path.endswith("pagerduty"):
        return [(b"x-pagerduty-signature", f"v1={hex_hmac(SECRETS['pagerduty'], body)}".encode())]
    if path.endswith("grafana"):
        signature = hex_hmac(SECRETS["grafana"], f"{now}:".encode() + body)
        return [
            (b"x-grafana-timestamp", now.encode()),
            (b"x-grafana-alerting-signature", signature.encode()),
        ]
    return [(b"authorization", f"Bearer {TOKEN}".encode())]


@pytest.fixture
def app(home: Path) -> Any:
    """The app over a server with every endpoint's secret set (its workers are not started)."""
    settings = Settings(
        home=home,
        prefect="external",
        webhook_token=SecretStr(TOKEN),
        pagerduty_secret=SecretStr(SECRETS["pagerduty"]),
        grafana_secret=SecretStr(SECRETS["grafana"]),
        grafana_timestamp_header="X-Grafana-Timestamp",
        slack_signing_secret=SecretStr(SECRETS["slack"]),
    )
    return build_app(make_server(settings, load_library(LIBRARY), dev=False).state)


def test_fuzzed_requests_are_answered_2xx_or_4xx(app: Any) -> None:
    """Random and odd headers (duplicated, huge, past ASCII), real, cut and random bodies, sent
    whole, in pieces or abandoned midway: every answer is a 2xx or a 4xx, and every kind of
    answer is reached."""
    rng = random.Random("requests")
    real = [p.read_bytes() for p in PAYLOADS.glob("*/*.json")]
    real += [command_body(text) for text in ("help", "list", "disk host=db-1", "status")]
    seen: Counter[int] = Counter()
    for case in range(CASES):
        path = rng.choice(PATHS)
        body = random_body(rng, real)
        headers: Headers = signed_right(rng, path, body) if rng.random() < 0.5 else []
        for _ in range(rng.randint(0, 5)):
            headers.append((rng.choice(NAMES), odd_value(rng)))
        if rng.random() < 0.1 and headers:
            headers.append(rng.choice(headers))  # the same header twice
        cut = rng.randint(1, 8)
        pieces = [body[i : i + cut * 16] for i in range(0, len(body), cut * 16)] or [b""]
        disconnect = rng.randint(0, len(pieces)) if rng.random() < 0.1 else None
        try:
            answer = post(app, path, headers, pieces, disconnect_after=disconnect)
        except Exception as error:
            raise AssertionError(f"case {case}: {path} {headers!r} raised {error!r}") from error
        assert answer.status in ANSWERS, f"case {case}: {path} {headers!r} -> {answer.status}"
        seen[answer.status] += 1
    assert {200, 202, 400, 401, 413, 422} <= set(seen), seen
