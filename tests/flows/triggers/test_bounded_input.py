"""Input is bounded before any work: a token is checked before the body is read, a body is cut
off just past its limit as it streams, and an odd header is a 4xx with its reason."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from flows.engine.settings import Settings
from flows.triggers.app import build_app
from flows.triggers.server import Server, load_library, make_server
from integrations.alerts.payload import MAX_BODY
from tests.asgi import Headers, mebibytes, post
from tests.support import FIXTURES, serve_in_thread

LIBRARY = FIXTURES / "library"
TOKEN = "hook-token-5d2c"
PAGERDUTY = "pd-secret-77"
SIGNING = "slack-signing-9f1e"
BEARER = [(b"authorization", f"Bearer {TOKEN}".encode())]
FIRING = json.dumps({"id": "a-1", "labels": {"alertname": "DiskFull", "instance": "db-1"}}).encode()


@pytest.fixture
def server(home: Path) -> Server:
    """A server with every endpoint's secret set; its workers are not started."""
    settings = Settings(
        home=home,
        prefect="external",
        webhook_token=SecretStr(TOKEN),
        pagerduty_secret=SecretStr(PAGERDUTY),
        slack_signing_secret=SecretStr(SIGNING),
    )
    return make_server(settings, load_library(LIBRARY), dev=False)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        yield client


def slack_signed(body: bytes, timestamp: str) -> dict[str, str]:
    base = f"v0:{timestamp}:".encode() + body
    signature = "v0=" + hmac.new(SIGNING.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}


@pytest.mark.parametrize("source", ["alertmanager", "datadog", "generic"])
@pytest.mark.parametrize("authorization", [None, b"Bearer wrong", b"Basic Og=="])
def test_a_bad_token_is_refused_before_a_byte_of_the_body_is_read(
    server: Server, source: str, authorization: bytes | None
) -> None:
    """A bearer endpoint answers 401 to a missing or wrong token without pulling any of a
    64 MiB chunked body, and closes the connection so the rest is never sent."""
    headers: Headers = [(b"transfer-encoding", b"chunked")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    answer = post(build_app(server.state), f"/alerts/{source}", headers, mebibytes(64))
    assert answer.status == 401, answer.body
    assert answer.pulled == 0
    assert answer.headers.get("connection") == "close"


@pytest.mark.parametrize(
    ("source", "headers"),
    [
        ("pagerduty", [(b"x-pagerduty-signature", b"v1=00")]),
        ("generic", BEARER),
    ],
)
def test_an_endless_body_is_cut_off_just_past_the_limit(
    server: Server, source: str, headers: Headers
) -> None:
    """A chunked body with no length is read only until it is one byte over 1 MiB, then
    answered 413: of 64 MiB the app pulls two chunks of one."""
    answer = post(
        build_app(server.state),
        f"/alerts/{source}",
        [(b"transfer-encoding", b"chunked"), *headers],
        mebibytes(64),
    )
    assert answer.status == 413, answer.body
    assert answer.pulled == 2
    assert "at most 1048576 bytes" in answer.json()["error"]
    assert answer.headers.get("connection") == "close"


def test_a_body_of_exactly_the_limit_is_read_whole(server: Server) -> None:
    """The limit is inclusive: 1 MiB of signed body is read to its end and judged on its own
    (here: its PagerDuty signature does not match)."""
    answer = post(
        build_app(server.state),
        "/alerts/pagerduty",
        [(b"x-pagerduty-signature", b"v1=00")],
        [b"x" * MAX_BODY],
    )
    assert answer.status == 401 and "does not match" in answer.json()["error"]


@pytest.mark.parametrize(
    ("length", "status"),
    [
        (b"12abc", 400),
        ("\u00b2".encode("latin-1"), 400),  # "²": str.isdigit() says yes, int() says no
        (b"-1", 400),
        (b"", 400),
        (b"9" * 4301, 413),
        (str(MAX_BODY + 1).encode(), 413),
    ],
)
def test_an_odd_content_length_is_a_4xx(server: Server, length: bytes, status: int) -> None:
    """A Content-Length that is no number, or one of thousands of digits, is refused with its
    reason before a byte of the body is read, never a 500."""
    headers = [(b"content-length", length), *BEARER]
    answer = post(build_app(server.state), "/alerts/generic", headers, [FIRING])
    assert answer.status == status, answer.body
    assert answer.pulled == 0
    assert answer.json()["error"]


def test_a_slack_timestamp_of_4301_digits_is_refused_as_unauthenticated(
    client: httpx.Client,
) -> None:
    """A timestamp too long for Python to turn into a number is a 401 naming the header."""
    body = b"command=%2Frunbook&text=help&trigger_id=1.2.3"
    answer = client.post("/slack/commands", content=body, headers=slack_signed(body, "9" * 4301))
    assert answer.status_code == 401, answer.text
    assert "x-slack-request-timestamp" in answer.json()["error"]


@pytest.mark.parametrize(
    "header", ["X-Slack-Signature", "X-Slack-Request-Timestamp", "Authorization"]
)
def test_a_credential_header_sent_twice_is_refused(client: httpx.Client, header: str) -> None:
    """Two signatures, two timestamps or two tokens make a 400 that names the header: which one
    would be checked is for no framework to decide."""
    body = b"command=%2Frunbook&text=help&trigger_id=1.2.4"
    pairs = [
        *slack_signed(body, str(int(time.time()))).items(),
        ("Authorization", f"Bearer {TOKEN}"),
    ]
    pairs.append(next(pair for pair in pairs if pair[0] == header))
    path = "/alerts/generic" if header == "Authorization" else "/slack/commands"
    answer = client.post(path, content=body, headers=pairs)
    assert answer.status_code == 400, answer.text
    assert f"the {header.lower()} header is sent more than once" in answer.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": b"Bearer \xff\xfe" + TOKEN.encode()},
        {"Authorization": b"Basic \xe9\xe9=="},
        {"X-Slack-Request-Timestamp": b"\xb2\xb3", "X-Slack-Signature": b"v0=ab"},
        {"X-Slack-Request-Timestamp": b"1700000000", "X-Slack-Signature": b"v0=\xe9\xff"},
    ],
)
def test_header_values_outside_ascii_are_refused_as_unauthenticated(
    client: httpx.Client, headers: dict[str, bytes]
) -> None:
    """Bytes past ASCII in a token, a timestamp or a signature are a 401, never a 500."""
    path = "/alerts/generic" if "Authorization" in headers else "/slack/commands"
    answer = client.post(path, content=FIRING, headers=headers)
    assert answer.status_code == 401, answer.text
