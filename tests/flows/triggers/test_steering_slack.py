"""Steering from Slack through the trigger server: signed `/runbook retry|skip|abort|assign|
severity|note|resume` commands, judged by the Slack user id against the roster, each act or
refusal in the ledger, and the run continued by a worker, against the fake Slack."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records, verify_ledger
from flows.triggers.app import build_app
from flows.triggers.jobs import JobState
from flows.triggers.server import Server, load_library, make_server
from integrations.jira.local import LocalTicketStore
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.triggers.test_slack_server import signed, slack_settings
from tests.support import serve_in_thread, wait_idle

pytestmark = pytest.mark.usefixtures("prefect_api")

RUNBOOK = """---
id: disk-war-room
title: Disk almost full
kind: outage
severity: sev3
version: 1
owner: "#ops"
inputs:
  host: {type: string, required: true}
triggers:
  slack: {command: disk, allowed: ["#ops"]}
---
# Disk almost full

## Ticket
```step
id: ticket
uses: jira.create_issue
with:
  project: OPS
  summary: "Disk almost full on {{ inputs.host }}"
```

## Tell the war room
```step
id: tell
uses: slack.post
with:
  channel: "#war-room"
  text: "Disk almost full on {{ inputs.host }}: {{ steps.ticket.key }}"
```

## Free space {#free-space}
- [ ] Old logs rotated

## Close
```step
id: close
uses: jira.transition
with:
  issue: "{{ steps.ticket.key }}"
  status: Resolved
```
"""

ROSTER = """roles: {incident-commander: {}, sre: {}}
people:
  alice: {slack: [U0ALICE], roles: [incident-commander]}
  bob: {slack: [U0BOB], roles: [sre]}
"""


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("ops")
        yield fake


@pytest.fixture
def served(home: Path, slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[Server, httpx.Client]]:
    """The trigger server over a library of the war-room runbook and its roster."""
    library = tmp_path / "library"
    library.mkdir()
    (library / "disk.md").write_text(RUNBOOK)
    (library / "responders.yaml").write_text(ROSTER)
    server = make_server(slack_settings(home, slack), load_library(library), dev=False)
    server.workers.start()
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        yield server, client
    server.workers.stop()


class Typing:
    """Slack users typing `/runbook ...` in #ops, each request signed and sent to the server."""

    def __init__(self, server: Server, client: httpx.Client) -> None:
        self.server, self.client, self.sent = server, client, 0

    def __call__(self, who: str, text: str) -> dict[str, Any]:
        self.sent += 1
        body = urllib.parse.urlencode(
            {
                "command": "/runbook",
                "text": text,
                "user_id": f"U0{who.upper()}",
                "user_name": who,
                "channel_id": "C0OPS",
                "channel_name": "ops",
                "team_id": "T0001",
                "response_url": "https://hooks.slack.test/commands/1",
                "trigger_id": f"{self.sent}.{who}",
            }
        ).encode()
        answer = self.client.post("/slack/commands", content=body, headers=signed(body))
        assert answer.status_code == 200
        wait_idle(self.server)
        reply: dict[str, Any] = answer.json()
        return reply


def ledger(home: Path, incident: str) -> list[Record]:
    return read_records(home / "incidents" / incident)


def failed_at_tell(typing: Typing, home: Path) -> str:
    """Alice starts the runbook; its post to #war-room fails (no such channel yet)."""
    started = typing("alice", "disk host=db-1")
    incident = started["text"].split("`")[1]
    finished = [r for r in ledger(home, incident) if r.event is Event.RUN_FINISHED]
    assert finished[-1].data["steps"]["tell"] == "failed"
    return incident


def test_retry_from_slack_reruns_the_step_once_without_a_second_ticket(
    served: tuple[Server, httpx.Client], slack: FakeSlack, home: Path
) -> None:
    """Bob (sre) is refused a retry, privately, and the refusal is recorded; Alice (the
    commander) retries: a worker runs the failed step once more and the ticket is not made
    again."""
    typing = Typing(*served)
    incident = failed_at_tell(typing, home)
    slack.add_channel("war-room")
    refused = typing("bob", f"retry {incident} tell")
    assert refused["response_type"] == "ephemeral"
    assert refused["text"].startswith("Refused: bob (sre) may not retry steps of incident")
    assert served[0].state.intake.count_jobs(JobState.DONE) == 1  # only the start
    (attempt,) = [r for r in ledger(home, incident) if r.event is Event.STEER_REFUSED]
    assert (attempt.actor, attempt.step, attempt.data["act"]) == ("bob", "tell", "retry")
    assert (attempt.data["identity"], attempt.data["channel"]) == ("slack:U0BOB", "slack")

    retried = typing("alice", f"retry {incident} tell")
    assert retried["response_type"] == "in_channel"
    assert "alice asked for step 'tell' of" in retried["text"] and "<@U0ALICE>" in retried["text"]
    records = ledger(home, incident)
    tell = [r.event for r in records if r.step == "tell" and r.event is not Event.STEER_REFUSED]
    assert tell == [
        Event.STEP_STARTED,
        Event.STEP_FAILED,
        Event.STEP_RETRY_REQUESTED,
        Event.STEP_STARTED,
        Event.STEP_SUCCEEDED,
    ]
    assert [r.event for r in records if r.step == "ticket"].count(Event.STEP_STARTED) == 1
    assert len(LocalTicketStore(home / "tickets.db").list_tickets()) == 1
    war_room = slack.channel_named("war-room")
    assert war_room is not None and len(slack.messages[war_room.id]) == 1
    assert [r.data["status"] for r in records if r.event is Event.RUN_FINISHED][-1] == "waiting"
    assert verify_ledger(home / "incidents" / incident).ok


def test_every_steering_act_from_slack_is_refused_without_the_role(
    served: tuple[Server, httpx.Client], home: Path
) -> None:
    """Bob (sre, not the starter) is refused each act privately; each refusal is in the ledger
    as his, and the incident is as it was: no job queued, severity unchanged, not aborted."""
    typing = Typing(*served)
    incident = failed_at_tell(typing, home)
    attempts = {
        "retry": f"retry {incident} tell",
        "skip": f"skip {incident} tell not needed",
        "abort": f"abort {incident} false alarm",
        "assign": f"assign {incident} incident-commander bob",
        "severity": f"severity {incident} sev1",
        "resume": f"resume {incident}",
    }
    for act, text in attempts.items():
        refused = typing("bob", text)
        assert refused["response_type"] == "ephemeral", act
        assert refused["text"].startswith("Refused: bob (sre) may not"), (act, refused["text"])
    assert served[0].state.intake.count_jobs(JobState.DONE) == 1  # only the start
    records = ledger(home, incident)
    refusals = [r for r in records if r.event is Event.STEER_REFUSED]
    assert [r.data["act"] for r in refusals] == list(attempts)
    assert all((r.actor, r.data["identity"]) == ("bob", "slack:U0BOB") for r in refusals)
    done = {Event.STEP_SKIPPED, Event.RUN_ABORTED, Event.INCIDENT_ASSIGNED, Event.INCIDENT_SEVERITY}
    assert not any(r.event in done for r in records)


def test_skip_assign_severity_note_and_abort_from_slack(
    served: tuple[Server, httpx.Client], slack: FakeSlack, home: Path
) -> None:
    """A skip lets the run go on past the step; anyone in the roster notes; the assigned
    commander may change the severity; an abort stops the incident and a resume then refuses."""
    typing = Typing(*served)
    incident = failed_at_tell(typing, home)
    skipped = typing("alice", f"skip {incident} tell posted in #ops by hand, it's fine")
    assert skipped["response_type"] == "in_channel"
    records = ledger(home, incident)
    (skip,) = [r for r in records if r.event is Event.STEP_SKIPPED]
    assert (skip.step, skip.actor, skip.data["reason"]) == (
        "tell",
        "alice",
        "posted in #ops by hand, it's fine",
    )
    assert [r.data["status"] for r in records if r.event is Event.RUN_FINISHED][-1] == "waiting"

    noted = typing("bob", f"note {incident} db-1 at 97%, can't reach the log volume")
    assert noted["response_type"] == "in_channel"
    note = ledger(home, incident)[-1]
    assert (note.event, note.actor, note.data["text"]) == (
        Event.NOTE,
        "bob",
        "db-1 at 97%, can't reach the log volume",
    )
    assert typing("bob", f"severity {incident} sev1")["response_type"] == "ephemeral"
    assigned = typing("alice", f"assign {incident} incident-commander <@U0BOB|bob>")
    assert "assigned incident-commander of" in assigned["text"]
    assert typing("bob", f"severity {incident} SEV1")["response_type"] == "in_channel"
    changed = ledger(home, incident)[-1]
    assert (changed.event, changed.data["severity"], changed.data["authority"]) == (
        Event.INCIDENT_SEVERITY,
        "sev1",
        "assigned:incident-commander",
    )

    aborted = typing("bob", f"abort {incident} disk was a false alarm")
    assert aborted["response_type"] == "in_channel"
    *_, abort, finished = ledger(home, incident)
    assert (abort.event, abort.actor, abort.data["reason"]) == (
        Event.RUN_ABORTED,
        "bob",
        "disk was a false alarm",
    )
    assert (finished.event, finished.data["status"]) == (Event.RUN_FINISHED, "failed")
    count = len(ledger(home, incident))
    refused = typing("alice", f"resume {incident}")
    assert refused["response_type"] == "ephemeral" and "was aborted by bob" in refused["text"]
    assert ledger(home, incident)[-1].data["act"] == "resume"
    assert len(ledger(home, incident)) == count + 1
    assert verify_ledger(home / "incidents" / incident).ok


def test_a_steering_typo_is_answered_privately_with_the_usage(
    served: tuple[Server, httpx.Client],
) -> None:
    """A steering command the grammar cannot read, or naming no incident, changes nothing."""
    typing = Typing(*served)
    unread = typing("alice", "skip inc-1")
    assert unread["response_type"] == "ephemeral" and "`/runbook skip" in unread["text"]
    missing = typing("alice", "abort inc-none it was nothing")
    assert missing["response_type"] == "ephemeral" and "no incident 'inc-none'" in missing["text"]


def test_status_shows_only_what_the_slack_user_may_see(
    served: tuple[Server, httpx.Client], home: Path
) -> None:
    """Someone the roster does not know sees no incidents, by list or by id; alice sees hers."""
    typing = Typing(*served)
    incident = failed_at_tell(typing, home)
    assert f"`{incident}`" in typing("alice", "status")["text"]
    assert typing("mallory", "status")["text"] == "No open incidents."
    hidden = typing("mallory", f"status {incident}")["text"]
    assert hidden.startswith("Not shown: ") and "not in the roster" in hidden
    assert "free-space" not in hidden and "tell" not in hidden
    assert f"Incident `{incident}` (sev3" in typing("alice", f"status {incident}")["text"]


GROUP_ROSTER = """roles: {incident-commander: {}, sre: {}}
people:
  alice: {slack: [U0ALICE], roles: [incident-commander]}
groups:
  oncall: {slack: "@oncall", roles: [incident-commander]}
"""


def test_a_slack_user_group_in_the_roster_is_matched_by_asking_slack(
    home: Path, slack: FakeSlack, tmp_path: Path
) -> None:
    """Carol is in no roster entry, only in the Slack user group @oncall the roster names: the
    server asks Slack, so she may change the severity; dave, outside the group, may not."""
    slack.add_usergroup("oncall", ["U0CAROL"])
    library = tmp_path / "library"
    library.mkdir()
    (library / "disk.md").write_text(RUNBOOK)
    (library / "responders.yaml").write_text(GROUP_ROSTER)
    server = make_server(slack_settings(home, slack), load_library(library), dev=False)
    server.workers.start()
    try:
        with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
            typing = Typing(server, client)
            incident = failed_at_tell(typing, home)
            refused = typing("dave", f"severity {incident} sev1")["text"]
            assert refused.startswith("Refused: slack:U0DAVE is not in the roster"), refused
            allowed = typing("carol", f"severity {incident} sev1")
            assert "sev1" in allowed["text"] and "Refused" not in allowed["text"], allowed
    finally:
        server.workers.stop()
    changed = [r for r in ledger(home, incident) if r.event is Event.INCIDENT_SEVERITY]
    assert [(r.actor, r.data["authority"]) for r in changed] == [
        ("slack:U0CAROL", "role:incident-commander")
    ]
