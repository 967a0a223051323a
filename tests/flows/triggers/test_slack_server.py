"""Slack into the trigger server: a signed slash command starts a run, a button acknowledges
its gate, all through the real slack_sdk client against a loopback fake Slack."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from flows.engine.settings import Settings
from flows.evidence.verify import read_records, verify_ledger
from flows.triggers.app import build_app
from flows.triggers.jobs import JobState
from flows.triggers.server import Server, load_library, make_server
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.support import FIXTURES, serve_in_thread, wait_idle

SECRET = "signing-secret-0b5e"
TRIGGERS = itertools.count(1)
"""Slack gives every command and press its own trigger_id; so do these helpers."""


def signed(body: bytes, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    """Slack's v0 signature headers for this body."""
    stamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command_body(text: str, channel: str = "ops", channel_id: str = "C0OPS") -> bytes:
    return urllib.parse.urlencode(
        {
            "command": "/runbook",
            "text": text,
            "user_id": "U0ALICE",
            "user_name": "alice",
            "channel_id": channel_id,
            "channel_name": channel,
            "team_id": "T0001",
            "response_url": "https://hooks.slack.test/commands/1",
            "trigger_id": f"1.2.{next(TRIGGERS)}",
        }
    ).encode()


def click_body(button: dict[str, Any], channel_id: str, channel: str, ts: str) -> bytes:
    """Bob pressing `button` on the message `ts`, as Slack posts a block action."""
    payload = {
        "type": "block_actions",
        "user": {"id": "U0BOB", "username": "bob", "name": "bob"},
        "channel": {"id": channel_id, "name": channel},
        "container": {"type": "message", "message_ts": ts, "channel_id": channel_id},
        "message": {"ts": ts},
        "response_url": "https://hooks.slack.test/actions/1",
        "trigger_id": f"4.5.{next(TRIGGERS)}",
        "actions": [
            {
                "action_id": button["action_id"],
                "value": button["value"],
                "type": "button",
                "block_id": "b",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def submit_body(slack: FakeSlack, note: str | None = None) -> bytes:
    """Bob submitting the gate dialog his press opened last, as Slack posts a view_submission."""
    if "U0BOB" not in slack.users:
        slack.add_user("bob", user_id="U0BOB")
    payload = slack.submission(list(slack.views)[-1], "U0BOB", {"answer": {"answer": note}})
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def gate_button(post: dict[str, Any]) -> dict[str, Any]:
    blocks = post["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    return next(b for b in blocks if b["type"] == "actions")["elements"][0]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("ops")
        yield fake


def slack_settings(home: Path, slack: FakeSlack, **extra: Any) -> Settings:
    """Settings with Slack configured against the fake."""
    return Settings(
        home=home,
        prefect="external",
        slack_signing_secret=SecretStr(SECRET),
        slack_bot_token=SecretStr(slack.token),
        slack_api_url=slack.url,
        **extra,
    )


def drill_library(folder: Path) -> Path:
    """The disk-full runbook and a drill scenario of it, scripted to answer its gate."""
    library = folder / "library"
    (library / "drills").mkdir(parents=True)
    (library / "disk-full.md").write_text((FIXTURES / "library" / "disk-full.md").read_text())
    (library / "drills" / "disk.yaml").write_text(
        "id: disk\ntitle: Disk drill\nrunbook: disk-full\n"
        "trigger: {slack: {command: 'disk host=db-9'}}\n"
        "participants: [{name: ops, role: responder}, {name: bob, role: on-call}]\n"
        "targets: {free-space: 10m}\n"
        "answers: {free-space: {by: ops, after: 1s}}\n"
    )
    return library


@pytest.fixture
def served(home: Path, slack: FakeSlack) -> Iterator[tuple[Server, httpx.Client]]:
    """The trigger server with Slack configured, over real HTTP, workers running."""
    settings = slack_settings(home, slack)
    server = make_server(settings, load_library(FIXTURES / "library"), dev=False)
    server.workers.start()
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        yield server, client
    server.workers.stop()


@pytest.mark.usefixtures("prefect_api")
def test_slash_command_starts_run_and_button_acknowledges_gate(
    served: tuple[Server, httpx.Client], slack: FakeSlack, home: Path
) -> None:
    """`/runbook disk host=db-1` starts the run; pressing the gate's button and submitting its
    dialog finishes it."""
    server, client = served
    body = command_body("disk host=db-1")
    answer = client.post("/slack/commands", content=body, headers=signed(body))
    assert answer.status_code == 200
    assert answer.json()["response_type"] == "in_channel"
    incident = answer.json()["text"].split("`")[1]
    wait_idle(server)

    gate_posts = [
        call.body for call in slack.calls("chat.postMessage") if "Waiting" in call.body["text"]
    ]
    assert len(gate_posts) == 1
    blocks = gate_posts[0]["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    button = next(b for b in blocks if b["type"] == "actions")["elements"][0]
    assert button["action_id"] == "runbook_ack_gate"
    channel = next(c for c in slack.channels.values() if c.name == "ops")
    ts = slack.messages[channel.id][-1]["ts"]

    click = click_body(button, channel.id, "ops", ts)
    answer = client.post("/slack/interactions", content=click, headers=signed(click))
    assert answer.status_code == 200
    assert slack.count("views.open") == 1  # the press opens the dialog; submitting it answers
    submit = submit_body(slack, "rotated the logs")
    answer = client.post("/slack/interactions", content=submit, headers=signed(submit))
    assert answer.status_code == 200
    wait_idle(server)

    records = read_records(home / "incidents" / incident)
    acks = [r for r in records if r.event == "gate.acknowledged"]
    assert [(r.step, r.actor) for r in acks] == [("free-space", "slack:U0BOB")]
    finished = [r.data["status"] for r in records if r.event == "run.finished"]
    assert finished == ["waiting", "succeeded"]
    assert slack.count("chat.update") == 1


def test_list_answers_with_the_runbooks_the_caller_may_start(
    served: tuple[Server, httpx.Client],
) -> None:
    """`/runbook list` is answered at once, ephemerally, with what this channel may start."""
    _, client = served
    allowed = command_body("list")
    answer = client.post("/slack/commands", content=allowed, headers=signed(allowed))
    assert answer.status_code == 200 and answer.json()["response_type"] == "ephemeral"
    assert "/runbook disk" in answer.json()["text"]
    elsewhere = command_body("list", channel="random", channel_id="C0RANDOM")
    answer = client.post("/slack/commands", content=elsewhere, headers=signed(elsewhere))
    assert "/runbook disk" not in answer.json()["text"]


def test_command_from_a_channel_not_allowed_starts_nothing(
    served: tuple[Server, httpx.Client],
) -> None:
    """A runbook's `allowed` list is enforced: elsewhere the command is refused politely."""
    server, client = served
    body = command_body("disk host=db-1", channel="random", channel_id="C0RANDOM")
    answer = client.post("/slack/commands", content=body, headers=signed(body))
    assert answer.status_code == 200 and "may not start" in answer.json()["text"]
    assert server.state.intake.count_jobs(JobState.PENDING) == 0


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda b: signed(b, at=time.time() - 301), id="301-s-old"),
        pytest.param(lambda b: signed(b, at=time.time() + 400), id="future"),
        pytest.param(lambda b: signed(b, secret="wrong"), id="wrong-secret"),
        pytest.param(lambda b: signed(command_body("disk host=evil")), id="tampered-body"),
        pytest.param(lambda b: {}, id="missing-headers"),
        pytest.param(
            lambda b: {**signed(b), "X-Slack-Request-Timestamp": "soon"},
            id="non-numeric-timestamp",
        ),
    ],
)
def test_bad_slack_signatures_are_401_and_change_nothing(
    served: tuple[Server, httpx.Client],
    headers: Callable[[bytes], dict[str, str]],
) -> None:
    """Old, future, forged, tampered or unsigned requests get 401 and queue nothing."""
    server, client = served
    payload = command_body("disk host=db-1")
    answer = client.post("/slack/commands", content=payload, headers=headers(payload))
    assert answer.status_code == 401
    assert server.state.intake.count_jobs(JobState.PENDING) == 0


@pytest.mark.usefixtures("prefect_api")
def test_drill_command_runs_a_scenario_in_the_sandboxes(
    home: Path, slack: FakeSlack, tmp_path: Path
) -> None:
    """`/runbook drill NAME` queues the scenario; it runs scripted, touching no real Slack."""
    library = drill_library(tmp_path)
    server = make_server(slack_settings(home, slack), load_library(library), dev=False)
    server.workers.start()
    try:
        with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
            posts_before = slack.count("chat.postMessage")
            body = command_body("drill disk")
            answer = client.post("/slack/commands", content=body, headers=signed(body))
            assert answer.status_code == 200 and "Starting drill" in answer.json()["text"]
            wait_idle(server, timeout=120)
    finally:
        server.workers.stop()
    drills = [p for p in (home / "incidents").iterdir() if p.name.startswith("drill-")]
    assert len(drills) == 1
    finished = [r for r in read_records(drills[0]) if r.event == "run.finished"]
    assert finished[-1].data["status"] == "succeeded"
    assert slack.count("chat.postMessage") == posts_before


@pytest.mark.usefixtures("prefect_api")
def test_server_drill_gates_are_answered_with_buttons_in_the_drill_channel(
    home: Path, slack: FakeSlack, tmp_path: Path
) -> None:
    """With a drill channel set, a Slack-started drill posts its gate there with a button; the
    press continues the drill, and Slack hears from it in that channel only."""
    drill_room = slack.add_channel("drills")  # its id
    library = drill_library(tmp_path)
    settings = slack_settings(home, slack, slack_drill_channel="#drills")
    server = make_server(settings, load_library(library), dev=False)
    server.workers.start()
    try:
        with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
            body = command_body("drill disk")
            answer = client.post("/slack/commands", content=body, headers=signed(body))
            assert answer.status_code == 200 and "Starting drill" in answer.json()["text"]
            wait_idle(server, timeout=120)

            posts = [call.body for call in slack.calls("chat.postMessage")]
            gate_posts = [post for post in posts if "Waiting" in post["text"]]
            assert len(gate_posts) == 1
            assert gate_posts[0]["text"].startswith("[DRILL] ")
            ts = slack.messages[drill_room][-1]["ts"]
            click = click_body(gate_button(gate_posts[0]), drill_room, "drills", ts)
            answer = client.post("/slack/interactions", content=click, headers=signed(click))
            assert answer.status_code == 200
            submit = submit_body(slack)
            answer = client.post("/slack/interactions", content=submit, headers=signed(submit))
            assert answer.status_code == 200
            wait_idle(server, timeout=120)
    finally:
        server.workers.stop()

    (folder,) = [p for p in (home / "incidents").iterdir() if p.name.startswith("drill-")]
    records = read_records(folder)
    acks = [(r.step, r.actor) for r in records if r.event == "gate.acknowledged"]
    assert acks == [("free-space", "slack:U0BOB")]  # the button, not the script's "ops"
    finished = [r.data["status"] for r in records if r.event == "run.finished"]
    assert finished == ["waiting", "succeeded"]
    scored = [r.data for r in records if r.event == "drill.scored"]
    assert scored[-1]["status"] == "succeeded"
    assert verify_ledger(folder).ok
    # Every Slack message of the drill went to the drill channel, marked; nothing was opened.
    posts = slack.calls("chat.postMessage")
    assert {slack_channel_of(slack, call.body["channel"]) for call in posts} == {drill_room}
    assert all(call.body["text"].startswith("[DRILL] ") for call in posts)
    assert any("Disk almost full on db-9" in call.body["text"] for call in posts)
    updates = slack.calls("chat.update")
    assert [call.body["text"] for call in updates] == ["[DRILL] Free space: acknowledged"]
    assert slack.count("conversations.create") == slack.count("conversations.invite") == 0
    elsewhere = [m for c, ms in slack.messages.items() if c != drill_room for m in ms]
    assert elsewhere == []


def slack_channel_of(slack: FakeSlack, channel: str) -> str:
    """The id of a channel given by id or #name, as the fake knows it."""
    named = slack.channel_named(channel.lstrip("#"))
    return named.id if named is not None else channel
