"""Gate buttons through the trigger server: Acknowledge and Reject open a dialog (views.open),
its signed submission records the answer with the note or reason as the Slack user who sent
it, the gate message shows who acted, and the person is told privately what a refusal or a
partial approval amounted to; all through the real slack_sdk client against the fake Slack."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records, verify_ledger
from flows.triggers.app import build_app
from flows.triggers.server import Server, load_library, make_server
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.triggers.test_slack_server import TRIGGERS, command_body, signed, slack_settings
from tests.support import serve_in_thread, wait_idle

pytestmark = pytest.mark.usefixtures("prefect_api")

RUNBOOK = """---
id: {id}
title: Leaked <key>
kind: breach
severity: sev2
version: 1
owner: "#ops"
triggers:
  slack: {{command: {id}, allowed: ["#ops"]}}
---
# Leaked key

## Note
```step
id: note
uses: evidence.note
with: {{text: started}}
```

## Contain {{#contain}}

```gate
{policy}
```

- [ ] Key revoked

## Close
```step
id: close
uses: evidence.note
with: {{text: closed}}
```
"""

ROSTER = """roles: {security: {}, sre: {}}
people:
  alice: {slack: [U0ALICE], roles: [security]}
  bea: {slack: [U0BEA], roles: [security]}
  sol: {slack: [U0SOL], roles: [sre]}
"""
PEOPLE = {"U0ALICE": "alice", "U0BEA": "bea", "U0SOL": "sol"}


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        ops = fake.channels[fake.add_channel("ops")]
        for user_id, name in PEOPLE.items():
            fake.add_user(name, user_id=user_id)
            ops.members.append(user_id)
        yield fake


@pytest.fixture
def served(home: Path, slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[Server, httpx.Client]]:
    """The trigger server over `guard` (security may pass it) and `quorum` (two of security),
    with their roster, Slack configured, workers running."""
    library = tmp_path / "library"
    library.mkdir()
    (library / "guard.md").write_text(
        RUNBOOK.format(id="guard", policy="approvers: {roles: [security]}")
    )
    (library / "quorum.md").write_text(
        RUNBOOK.format(id="quorum", policy="approvers: {roles: [security]}\nmin_approvals: 2")
    )
    (library / "responders.yaml").write_text(ROSTER)
    server = make_server(slack_settings(home, slack), load_library(library), dev=False)
    server.workers.start()
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        yield server, client
    server.workers.stop()


class Ops:
    """People in #ops: start a runbook, press the gate's buttons, submit the dialogs."""

    def __init__(self, server: Server, client: httpx.Client, slack: FakeSlack) -> None:
        self.server, self.client, self.slack = server, client, slack
        ops = slack.channel_named("ops")
        assert ops is not None
        self.channel = ops.id

    def start(self, command: str) -> str:
        body = command_body(command)
        answer = self.client.post("/slack/commands", content=body, headers=signed(body))
        assert answer.status_code == 200, answer.text
        wait_idle(self.server)
        return str(answer.json()["text"].split("`")[1])

    def gate_message(self) -> dict[str, Any]:
        """The latest message in #ops that has buttons or was a gate, as Slack holds it now."""
        return next(m for m in reversed(self.slack.messages[self.channel]) if m.get("blocks"))

    def press(self, user: str, button: str, *, trigger: bool | str = True) -> httpx.Response:
        """`user` presses Acknowledge or Reject on the gate message (a signed block action),
        with a fresh trigger_id, this one (a str), or none (False)."""
        message = self.gate_message()
        actions = next(b for b in message["blocks"] if b["type"] == "actions")
        element = next(e for e in actions["elements"] if e["text"]["text"] == button)
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": PEOPLE[user], "name": PEOPLE[user]},
            "channel": {"id": self.channel, "name": "ops"},
            "container": {"type": "message", "message_ts": message["ts"]},
            "message": {"ts": message["ts"]},
            "response_url": "https://hooks.slack.test/actions/1",
            "actions": [
                {"action_id": element["action_id"], "value": element["value"], "type": "button"}
            ],
        }
        if trigger:
            payload["trigger_id"] = trigger if isinstance(trigger, str) else f"4.5.{next(TRIGGERS)}"
        return self.post(payload)

    def submit(self, user: str, text: str | None) -> httpx.Response:
        """`user` types `text` into the dialog opened last and submits it (a signed request)."""
        view_id = list(self.slack.views)[-1]
        payload = self.slack.submission(view_id, user, {"answer": {"answer": text}})
        answer = self.post(payload)
        wait_idle(self.server)
        return answer

    def post(self, payload: dict[str, Any]) -> httpx.Response:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        answer = self.client.post("/slack/interactions", content=body, headers=signed(body))
        assert answer.status_code == 200, answer.text
        return answer


@pytest.fixture
def ops(served: tuple[Server, httpx.Client], slack: FakeSlack) -> Ops:
    return Ops(*served, slack)


def gate_records(home: Path, incident: str) -> list[Record]:
    return [r for r in read_records(home / "incidents" / incident) if r.step == "contain"]


def finished(home: Path, incident: str) -> list[str]:
    records = read_records(home / "incidents" / incident)
    return [str(r.data["status"]) for r in records if r.event is Event.RUN_FINISHED]


def context_text(message: dict[str, Any]) -> str:
    return " ".join(
        element["text"]
        for block in message["blocks"]
        if block["type"] == "context"
        for element in block["elements"]
    )


def test_acknowledge_opens_a_dialog_whose_note_goes_into_the_ledger(
    ops: Ops, slack: FakeSlack, home: Path
) -> None:
    """Acknowledge opens a dialog with the press's trigger_id and records nothing yet; its
    submission records the note (a pasted token redacted) as the Slack user who submitted,
    the run finishes, and the message says who acknowledged it."""
    incident = ops.start("guard")
    ops.press("U0BEA", "Acknowledge")
    (opened,) = slack.calls("views.open")
    assert opened.body["trigger_id"].startswith("4.5.")
    view = list(slack.views.values())[-1]
    assert view["blocks"][-1]["optional"] is True
    assert [r.event for r in gate_records(home, incident)] == [Event.GATE_WAITING]

    answer = ops.submit("U0BEA", "revoked at 10:02, old token xoxb-1234-abcdefgh")
    assert answer.json() == {"response_action": "clear"}
    acknowledged = gate_records(home, incident)[-1]
    assert (acknowledged.event, acknowledged.actor) == (Event.GATE_ACKNOWLEDGED, "bea")
    assert acknowledged.data["identity"] == "slack:U0BEA"
    assert acknowledged.data["note"] == "revoked at 10:02, old token [REDACTED]"
    assert finished(home, incident) == ["waiting", "succeeded"]
    assert "Acknowledged by <@U0BEA>" in context_text(ops.gate_message())
    assert not any(b["type"] == "actions" for b in ops.gate_message()["blocks"])
    assert slack.ephemerals == []
    assert verify_ledger(home / "incidents" / incident).ok


def test_reject_asks_for_a_reason_and_ends_the_run_failed(
    ops: Ops, slack: FakeSlack, home: Path
) -> None:
    """Reject opens a dialog whose reason is required; its submission records `gate.rejected`
    with the reason, the run ends failed there, and the message says who rejected it, why."""
    incident = ops.start("guard")
    ops.press("U0BEA", "Reject")
    view = list(slack.views.values())[-1]
    assert view["blocks"][-1]["optional"] is False
    ops.submit("U0BEA", "the key is <still> live")
    rejected = gate_records(home, incident)[-1]
    assert (rejected.event, rejected.actor) == (Event.GATE_REJECTED, "bea")
    assert (rejected.data["reason"], rejected.data["authority"]) == (
        "the key is <still> live",
        "role:security",
    )
    assert finished(home, incident) == ["waiting", "failed"]
    records = read_records(home / "incidents" / incident)
    assert not any(r.step == "close" for r in records)
    said = context_text(ops.gate_message())
    assert "Rejected by <@U0BEA>: the key is &lt;still&gt; live" in said


def test_a_refused_answer_is_recorded_and_told_only_to_who_gave_it(
    ops: Ops, slack: FakeSlack, home: Path
) -> None:
    """Someone who may not pass the gate is told why, in an ephemeral message to them alone;
    the refusal is in the ledger, the message unchanged and the run still waiting."""
    incident = ops.start("guard")
    ops.press("U0SOL", "Acknowledge")
    ops.submit("U0SOL", "done")
    refused = gate_records(home, incident)[-1]
    assert (refused.event, refused.actor) == (Event.GATE_REFUSED, "sol")
    (told,) = slack.ephemerals
    assert (told["channel"], told["user"]) == (ops.channel, "U0SOL")
    assert "not counted: sol (sre) may not pass this gate: it needs role security" in told["text"]
    assert "/" not in told["text"]  # no server paths
    assert slack.count("chat.update") == 0
    assert finished(home, incident) == ["waiting"]


def test_two_approvers_pass_a_quorum_gate_and_the_message_follows(
    ops: Ops, slack: FakeSlack, home: Path
) -> None:
    """The first approval of two is told "approved, 1 of 2", the message lists who approved
    and keeps its buttons; the second approver's acknowledgement passes the gate."""
    incident = ops.start("quorum")
    ops.press("U0ALICE", "Acknowledge")
    ops.submit("U0ALICE", "checked the audit log")
    (told,) = slack.ephemerals
    assert told["user"] == "U0ALICE"
    assert "approved, 1 of 2: waiting for another approver" in told["text"]
    message = ops.gate_message()
    assert "Approved by alice (1 of 2): waiting for another approver" in context_text(message)
    assert any(b["type"] == "actions" for b in message["blocks"])
    assert finished(home, incident) == ["waiting"]

    ops.press("U0BEA", "Acknowledge")
    ops.submit("U0BEA", None)
    events = [r.event for r in gate_records(home, incident)]
    assert events == [Event.GATE_WAITING, Event.GATE_APPROVED, Event.GATE_ACKNOWLEDGED]
    assert finished(home, incident) == ["waiting", "succeeded"]
    said = context_text(ops.gate_message())
    assert "Acknowledged by <@U0BEA> (approved by alice, bea)" in said
    assert len(slack.ephemerals) == 1
    assert slack.count("chat.update") == 2


def test_without_a_trigger_id_acknowledge_answers_directly_and_reject_asks_for_a_reason(
    ops: Ops, slack: FakeSlack, home: Path
) -> None:
    """A press that cannot open a dialog: Reject records nothing and says a reason is needed;
    Acknowledge passes the gate as the presser, as before dialogs."""
    incident = ops.start("guard")
    ops.press("U0BEA", "Reject", trigger=False)
    assert [r.event for r in gate_records(home, incident)] == [Event.GATE_WAITING]
    (told,) = slack.ephemerals
    assert told["user"] == "U0BEA" and "needs a reason" in told["text"]

    ops.press("U0BEA", "Acknowledge", trigger=False)
    wait_idle(ops.server)
    assert slack.count("views.open") == 0
    acknowledged = gate_records(home, incident)[-1]
    assert (acknowledged.event, acknowledged.actor) == (Event.GATE_ACKNOWLEDGED, "bea")
    assert acknowledged.data["note"] == "acknowledged in Slack by <@U0BEA>"
    assert finished(home, incident) == ["waiting", "succeeded"]


def test_a_dialog_submission_is_acted_on_once(
    ops: Ops, slack: FakeSlack, home: Path, served: tuple[Server, httpx.Client]
) -> None:
    """A submission replayed with its signature is refused (409); sent again signed anew, its
    trigger_id was seen and it only closes the dialog: one approval either way."""
    _, client = served
    incident = ops.start("quorum")
    ops.press("U0ALICE", "Acknowledge")
    payload = slack.submission(list(slack.views)[-1], "U0ALICE", {"answer": {"answer": "ok"}})
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    headers = signed(body)
    first = client.post("/slack/interactions", content=body, headers=headers)
    replayed = client.post("/slack/interactions", content=body, headers=headers)
    resigned = client.post(
        "/slack/interactions", content=body, headers=signed(body, at=time.time() - 5)
    )
    assert [first.status_code, replayed.status_code, resigned.status_code] == [200, 409, 200]
    assert resigned.json() == {"response_action": "clear"}
    events = [r.event for r in gate_records(home, incident)]
    assert events == [Event.GATE_WAITING, Event.GATE_APPROVED]


def test_a_dialog_slack_will_not_open_records_nothing_and_says_so(
    ops: Ops, slack: FakeSlack, home: Path
) -> None:
    """A press whose trigger_id Slack refuses (more than 3 s old) is told to press again, and
    nothing is recorded."""
    incident = ops.start("guard")
    slack.expired_triggers.add("4.5.late")
    ops.press("U0BEA", "Acknowledge", trigger="4.5.late")
    (told,) = slack.ephemerals
    assert told["user"] == "U0BEA" and "did not open the dialog" in told["text"]
    assert "Press the button again" in told["text"]
    assert [r.event for r in gate_records(home, incident)] == [Event.GATE_WAITING]
    assert slack.views == {}
