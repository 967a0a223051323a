"""Signed Slack requests act once: a copy of one (a replay inside the signature window, or a
second delivery of the same command or press) is refused, by this server or a restarted one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flows.evidence.verify import read_records
from flows.triggers.app import build_app
from flows.triggers.intake import REPLAY_WINDOW_S, Intake
from flows.triggers.jobs import JobState
from flows.triggers.server import INTAKE_DB, Server, load_library, make_server
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.triggers.test_slack_server import (
    click_body,
    command_body,
    gate_button,
    signed,
    slack_settings,
    submit_body,
)
from tests.support import FIXTURES, serve_in_thread, wait_idle

LIBRARY = FIXTURES / "library"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("ops")
        yield fake


def idle_server(home: Path, slack: FakeSlack) -> Server:
    """A server whose workers are not started: what a request queued stays countable."""
    return make_server(slack_settings(home, slack), load_library(LIBRARY), dev=False)


def post(client: httpx.Client, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post(path, content=body, headers=headers)


def test_a_replayed_slash_command_starts_one_incident(home: Path, slack: FakeSlack) -> None:
    """The same signed command sent three times within the window starts one incident; the
    copies get a 409 and queue nothing."""
    server = idle_server(home, slack)
    body = command_body("disk host=db-1")
    headers = signed(body)
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        answers = [post(client, "/slack/commands", body, headers) for _ in range(3)]
        metrics = client.get("/metrics").text
    assert [a.status_code for a in answers] == [200, 409, 409]
    assert "Starting" in answers[0].json()["text"]
    assert server.state.intake.count_jobs(JobState.PENDING) == 1
    assert 'reason="replayed"' in metrics


def test_a_restarted_server_refuses_a_replay_too(home: Path, slack: FakeSlack) -> None:
    """Signatures are kept in the intake database, so a new server over it refuses the copy."""
    body = command_body("disk host=db-1")
    headers = signed(body)
    first = idle_server(home, slack)
    with serve_in_thread(build_app(first.state)) as url, httpx.Client(base_url=url) as client:
        assert post(client, "/slack/commands", body, headers).status_code == 200
    second = idle_server(home, slack)
    with serve_in_thread(build_app(second.state)) as url, httpx.Client(base_url=url) as client:
        assert post(client, "/slack/commands", body, headers).status_code == 409
    assert second.state.intake.count_jobs(JobState.PENDING) == 1


def test_the_same_command_signed_again_is_refused_by_its_trigger_id(
    home: Path, slack: FakeSlack
) -> None:
    """A command delivered twice with fresh signatures (Socket Mode redelivers) runs once: its
    trigger_id was seen, so the second gets an ephemeral refusal."""
    server = idle_server(home, slack)
    body = command_body("disk host=db-1")
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        first = post(client, "/slack/commands", body, signed(body, at=time.time() - 5))
        second = post(client, "/slack/commands", body, signed(body))
    assert first.status_code == second.status_code == 200
    assert second.json()["response_type"] == "ephemeral"
    assert second.json()["text"].startswith("This request reached the server before")
    assert server.state.intake.count_jobs(JobState.PENDING) == 1


def test_remembered_requests_expire_after_the_window(tmp_path: Path) -> None:
    """A key is refused within its window and forgotten after it, so the table stays small."""
    intake = Intake(tmp_path / INTAKE_DB)
    now = 1_000_000.0
    until = now + REPLAY_WINDOW_S
    assert intake.first_sighting(["k"], until, now=now)
    assert not intake.first_sighting(["k"], until, now=now + REPLAY_WINDOW_S)
    assert intake.first_sighting(["k"], until + 1000, now=until + 1)


@pytest.mark.usefixtures("prefect_api")
def test_a_replayed_gate_press_acknowledges_and_resumes_once(home: Path, slack: FakeSlack) -> None:
    """Pressing a gate's button once and replaying the signed press twice opens one dialog;
    submitting it once and replaying that twice records one acknowledgement and one resume."""
    server = idle_server(home, slack)
    server.workers.start()
    try:
        with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
            body = command_body("disk host=db-1")
            incident = post(client, "/slack/commands", body, signed(body)).json()["text"]
            incident = incident.split("`")[1]
            wait_idle(server)
            ops = slack.channel_named("ops")
            assert ops is not None
            gate_post = next(
                c.body for c in slack.calls("chat.postMessage") if c.body.get("blocks")
            )
            ts = next(m["ts"] for m in slack.messages[ops.id] if m.get("blocks"))
            click = click_body(gate_button(gate_post), ops.id, "ops", ts)
            headers = signed(click)
            answers = [post(client, "/slack/interactions", click, headers) for _ in range(3)]
            submit = submit_body(slack)
            headers = signed(submit)
            answers += [post(client, "/slack/interactions", submit, headers) for _ in range(3)]
            wait_idle(server)
    finally:
        server.workers.stop()
    assert [a.status_code for a in answers] == [200, 409, 409] * 2
    assert slack.count("views.open") == 1
    records = read_records(home / "incidents" / incident)
    assert [r.step for r in records if r.event == "gate.acknowledged"] == ["free-space"]
    assert [r.data["status"] for r in records if r.event == "run.finished"] == [
        "waiting",
        "succeeded",
    ]
