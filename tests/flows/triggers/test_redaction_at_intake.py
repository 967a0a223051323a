"""What arrives at the trigger server is redacted before the intake or the evidence keeps it:
Slack command text (secrets), alert payloads (secrets and personal data)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from flows.engine.settings import Settings
from flows.evidence.personal import PersonalData, marker
from flows.evidence.verify import read_records
from flows.triggers.app import build_app
from flows.triggers.jobs import JobState
from flows.triggers.server import Server, load_library, make_server
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.triggers.test_server import AUTH, alertmanager_payload
from tests.flows.triggers.test_slack_server import command_body, signed, slack_settings
from tests.support import FIXTURES, serve_in_thread, wait_idle

SLACK_TOKEN = "xoxb-2048301524823-4971235698210-Zq8Lm3Tb7Vn1Wc5Yd3Hj6Ga0"
HOOK_TOKEN = "hook-token-5d2c"


def stored_bytes(home: Path, incident: str | None = None) -> list[bytes]:
    """Everything the server keeps on disk: the intake (WAL too) and the incident's folder."""
    kept = [path.read_bytes() for path in home.glob("intake.db*")]
    if incident is not None:
        kept += [path.read_bytes() for path in (home / "incidents" / incident).iterdir()]
    return kept


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("ops")
        yield fake


@contextlib.contextmanager
def serving(server: Server) -> Iterator[httpx.Client]:
    """An HTTP client for the server's app, served by uvicorn on a loopback port."""
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture
def idle(home: Path, slack: FakeSlack) -> Iterator[tuple[Server, httpx.Client]]:
    """The trigger server with Slack and webhooks configured, no worker taking jobs."""
    settings = slack_settings(home, slack, webhook_token=SecretStr(HOOK_TOKEN))
    server = make_server(settings, load_library(FIXTURES / "library"), dev=False)
    with serving(server) as client:
        yield server, client


def test_a_token_typed_into_a_slash_command_never_reaches_the_intake(
    idle: tuple[Server, httpx.Client], home: Path
) -> None:
    """`/runbook disk host="db-1 xoxb-..."` queues the run with the token already redacted."""
    server, client = idle
    body = command_body(f'disk host="db-1 {SLACK_TOKEN}"')
    answer = client.post("/slack/commands", content=body, headers=signed(body))
    assert answer.status_code == 200 and "Starting" in answer.json()["text"]
    job = server.state.intake.claim()
    assert job is not None
    assert job.payload["inputs"] == {"host": "db-1 [REDACTED]"}
    assert not any(SLACK_TOKEN.encode() in data for data in stored_bytes(home))


def test_a_secret_input_is_never_taken_from_slack(home: Path, slack: FakeSlack) -> None:
    """A runbook's secret input given in Slack is refused, saying how to give it instead."""
    library = home.parent / "library"
    library.mkdir()
    runbook = (FIXTURES / "library" / "disk-full.md").read_text()
    secret = "  api_token: {type: string, secret: true, default: '', description: A token}\n"
    (library / "disk-full.md").write_text(runbook.replace("triggers:\n", secret + "triggers:\n"))
    server = make_server(slack_settings(home, slack), load_library(library), dev=False)
    with serving(server) as client:
        body = command_body(f"disk host=db-1 api_token={SLACK_TOKEN}")
        answer = client.post("/slack/commands", content=body, headers=signed(body))
        assert answer.status_code == 200
        text = answer.json()["text"]
        assert answer.json()["response_type"] == "ephemeral"
        assert "api_token is a secret input, never taken from Slack" in text
        assert "from a terminal" in text
        assert "--input" not in text and str(library) not in text  # no flags, no server paths
    assert server.state.intake.count_jobs(JobState.PENDING) == 0
    assert not any(SLACK_TOKEN.encode() in data for data in stored_bytes(home))


def test_personal_data_in_an_alert_is_redacted_before_the_intake_keeps_it(
    idle: tuple[Server, httpx.Client], home: Path
) -> None:
    """An alert's e-mail addresses and card numbers are replaced by markers in the queued job."""
    server, client = idle
    body = alertmanager_payload()
    alert = body["alerts"][0]
    alert["annotations"]["description"] = (
        "chargeback for 4111 1111 1111 1111, customer alice@example.com"
    )
    answer = client.post("/alerts/alertmanager", content=json.dumps(body), headers=AUTH)
    assert answer.status_code == 202, answer.text
    job = server.state.intake.claim()
    assert job is not None
    assert job.payload["alert"]["annotations"]["description"] == (
        f"chargeback for {marker(PersonalData.CARD)}, customer {marker(PersonalData.EMAIL)}"
    )
    kept = stored_bytes(home)
    assert not any(b"alice@example.com" in data or b"4111 1111" in data for data in kept)


def test_an_install_that_keeps_personal_data_keeps_it_in_alerts(home: Path) -> None:
    """With RUNBOOK_REDACT_PERSONAL_DATA=none the alert is queued as it came, secrets aside."""
    settings = Settings(
        home=home,
        prefect="external",
        webhook_token=SecretStr(HOOK_TOKEN),
        redact_personal_data=[],
    )
    server = make_server(settings, load_library(FIXTURES / "library"), dev=False)
    body = alertmanager_payload()
    body["alerts"][0]["annotations"]["description"] = "customer alice@example.com"
    with serving(server) as client:
        answer = client.post("/alerts/alertmanager", content=json.dumps(body), headers=AUTH)
        assert answer.status_code == 202, answer.text
    job = server.state.intake.claim()
    assert job is not None
    assert job.payload["alert"]["annotations"]["description"] == "customer alice@example.com"


@pytest.mark.usefixtures("prefect_api")
def test_slack_command_text_is_redacted_in_intake_incident_and_ledger(
    home: Path, slack: FakeSlack
) -> None:
    """A token typed into a slash command is found nowhere once its run is over."""
    server = make_server(slack_settings(home, slack), load_library(FIXTURES / "library"), dev=False)
    server.workers.start()
    try:
        with serving(server) as client:
            body = command_body(f'disk host="db-1 {SLACK_TOKEN}"')
            answer = client.post("/slack/commands", content=body, headers=signed(body))
            assert answer.status_code == 200
            incident = answer.json()["text"].split("`")[1]
            wait_idle(server)
    finally:
        server.workers.stop()
    started = next(
        r for r in read_records(home / "incidents" / incident) if r.event == "run.started"
    )
    assert started.data["inputs"] == {"host": "db-1 [REDACTED]"}
    kept = [*stored_bytes(home, incident), (home / "tickets.db").read_bytes()]
    assert not any(SLACK_TOKEN.encode() in data for data in kept)
