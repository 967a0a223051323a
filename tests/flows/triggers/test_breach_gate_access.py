"""The testers' breach scenario, on the shipped credential-leak runbook and roster: `bob` (a
service owner) in `#random` presses the triage gate's Acknowledge, which only the incident
commander may pass. He is refused and told why, the refusal is in the ledger, the gate message
keeps its buttons, and the run stays at the gate until the commander answers; then the next gate
reaches Slack with its buttons, titled with the runbook title."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.evidence.records import Event
from flows.evidence.verify import read_records, verify_ledger
from flows.triggers.app import build_app
from flows.triggers.server import Server, load_library, make_server
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.triggers.test_slack_server import TRIGGERS, command_body, signed, slack_settings
from tests.support import PROJECT, serve_in_thread, wait_idle

pytestmark = pytest.mark.usefixtures("prefect_api")

TITLE = "Leaked credentials / suspected breach"


@pytest.fixture(autouse=True)
def _shipped_roster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)  # the library's responders.yaml


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("sec-oncall")
        fake.add_channel("random")
        fake.add_user("alice", user_id="U0ALICE")
        fake.add_user("bob", user_id="U0BOB")
        yield fake


@pytest.fixture
def served(home: Path, slack: FakeSlack) -> Iterator[tuple[Server, httpx.Client]]:
    server = make_server(slack_settings(home, slack), load_library(PROJECT / "runbooks"), dev=False)
    server.workers.start()
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        yield server, client
    server.workers.stop()


def gate_messages(slack: FakeSlack) -> list[tuple[str, dict[str, Any]]]:
    """Every message with an actions block (a gate awaiting an answer), with its channel id."""
    return [
        (channel, message)
        for channel, messages in slack.messages.items()
        for message in messages
        if any(b["type"] == "actions" for b in message.get("blocks") or [])
    ]


def interact(client: httpx.Client, payload: dict[str, Any]) -> httpx.Response:
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    answer = client.post("/slack/interactions", content=body, headers=signed(body))
    assert answer.status_code == 200, answer.text
    return answer


def press(
    client: httpx.Client, message: dict[str, Any], user: str, name: str, channel: str
) -> None:
    """`user` presses Acknowledge on `message`, from `channel` (a signed block action)."""
    actions = next(b for b in message["blocks"] if b["type"] == "actions")
    button = next(e for e in actions["elements"] if e["text"]["text"] == "Acknowledge")
    interact(
        client,
        {
            "type": "block_actions",
            "user": {"id": user, "username": name, "name": name},
            "channel": {"id": channel, "name": "random"},
            "container": {"type": "message", "message_ts": message["ts"]},
            "message": {"ts": message["ts"]},
            "trigger_id": f"7.7.{next(TRIGGERS)}",
            "response_url": "https://hooks.slack.test/actions/1",
            "actions": [{"action_id": button["action_id"], "value": button["value"]}],
        },
    )


def submit(client: httpx.Client, slack: FakeSlack, server: Server, user: str, note: str) -> None:
    """`user` types `note` into the dialog opened last and submits it."""
    view_id = list(slack.views)[-1]
    interact(client, slack.submission(view_id, user, {"answer": {"answer": note}}))
    wait_idle(server)


def test_bob_in_random_cannot_pass_the_breach_triage_gate(
    home: Path, slack: FakeSlack, served: tuple[Server, httpx.Client]
) -> None:
    server, client = served
    oncall = slack.channel_named("sec-oncall")
    random = slack.channel_named("random")
    assert oncall is not None and random is not None
    body = command_body("breach service=api", channel="sec-oncall", channel_id=oncall.id)
    started = client.post("/slack/commands", content=body, headers=signed(body))
    assert started.status_code == 200, started.text
    wait_idle(server)
    incident = str(started.json()["text"].split("`")[1])
    folder = home / "incidents" / incident

    [(_, triage)] = gate_messages(slack)
    assert TITLE in json.dumps(triage["blocks"])
    press(client, triage, "U0BOB", "bob", random.id)
    if slack.views:  # the press opens the note dialog; the answer is judged on submission
        submit(client, slack, server, "U0BOB", "looks fine to me")
    wait_idle(server)

    records = read_records(folder)
    refused = [r for r in records if r.event is Event.GATE_REFUSED]
    assert [(r.step, r.actor) for r in refused] == [("triage", "bob")]
    assert "may not pass this gate" in str(refused[0].data["reason"])
    assert not any(r.event is Event.GATE_ACKNOWLEDGED for r in records)
    assert not any(r.step == "contained_update" for r in records)
    told = [c.body for c in slack.calls("chat.postEphemeral") if c.body.get("user") == "U0BOB"]
    assert told and "may not" in str(told[-1]["text"])
    [(_, still)] = gate_messages(slack)  # the buttons stay for someone who may answer
    assert still["ts"] == triage["ts"]

    press(client, triage, "U0ALICE", "alice", oncall.id)
    submit(client, slack, server, "U0ALICE", "confirmed: key in a public gist")
    records = read_records(folder)
    acknowledged = [r for r in records if r.event is Event.GATE_ACKNOWLEDGED]
    assert [(r.step, r.actor) for r in acknowledged] == [("triage", "alice")]
    assert acknowledged[0].data["authority"] == "role:incident-commander"
    waiting = [m for _, m in gate_messages(slack) if m["ts"] != triage["ts"]]
    assert len(waiting) == 1 and "contain" in json.dumps(waiting[0]["blocks"])
    assert TITLE in json.dumps(waiting[0]["blocks"])
    assert verify_ledger(folder).ok
