"""Gate timers: what a waiting gate's policy makes due, and each act done once, through the real
slack_sdk client against a loopback fake Slack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.contract.ports import ChatSystem
from flows.engine.authority import Outcome
from flows.engine.gate_timers import Act, check_incident, due
from flows.engine.runner import acknowledge_gate
from flows.engine.settings import Settings
from flows.evidence.progress import ItemStatus, progress_from_records
from flows.evidence.records import Record
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import slack_identity
from flows.runbook.model import Gate
from flows.runbook.parse import parse_runbook
from integrations.config import SlackConfig
from integrations.idempotency import IdempotencyMap
from integrations.slack.web import SlackChat
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.engine.timed_gates import waiting_incident, write_library


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("ops")
        yield fake


def slack_chat(slack: FakeSlack, home: Path) -> ChatSystem:
    """The real Slack backend, pointed at the fake."""
    config = SlackConfig(bot_token=slack.token, api_url=slack.url)
    return SlackChat(config, IdempotencyMap(home / "idempotency.db"))


def gates_of(path: Path) -> list[Gate]:
    return list(parse_runbook(path).gates)


def timer_records(home: Path, incident: str) -> list[Record]:
    folder = home / "incidents" / incident
    return [r for r in read_records(folder) if r.event in ("gate.reminded", "gate.timed_out")]


def posts_to_ops(slack: FakeSlack) -> list[dict[str, Any]]:
    ops = slack.channel_named("ops")
    assert ops is not None
    return [
        call.body
        for call in slack.calls("chat.postMessage")
        if call.body["channel"]
        in (
            ops.id,
            "#ops",
        )
    ]


def test_a_reminder_is_due_from_remind_before_the_timeout_until_it_runs_out(
    home: Path, tmp_path: Path
) -> None:
    """With `timeout_s: 600` and `remind_before_s: 120`, nothing is due before 480 s of waiting,
    the reminder from then, and at 600 s the timeout instead of a reminder that comes too late."""
    settings = Settings(home=home)
    path = write_library(tmp_path / "library", "escalate", timeout_s=600, remind_before_s=120)
    waiting = waiting_incident(settings, path, "inc-due")
    records = read_records(home / "incidents" / "inc-due")
    gates = gates_of(path)

    def acts(after_s: float) -> list[Act]:
        return [d.act for d in due(records, gates, waiting.at + timedelta(seconds=after_s))]

    assert acts(479) == []
    assert acts(480) == [Act.REMIND]
    assert acts(599) == [Act.REMIND]
    assert acts(600) == [Act.ESCALATE]
    (found,) = due(records, gates, waiting.at + timedelta(seconds=700))
    assert found.since == waiting.at and found.deadline == waiting.at + timedelta(seconds=600)


def test_a_gate_passed_in_time_has_nothing_due(home: Path, tmp_path: Path) -> None:
    """Once the gate is acknowledged, its timer makes nothing due, however long it is after."""
    settings = Settings(home=home)
    path = write_library(tmp_path / "library", "fail", timeout_s=60, remind_before_s=30)
    waiting = waiting_incident(settings, path, "inc-passed")
    decision = acknowledge_gate(settings, "inc-passed", "contain", slack_identity("U0SAM", "sam"))
    assert decision.acknowledged, decision
    records = read_records(home / "incidents" / "inc-passed")
    assert due(records, gates_of(path), waiting.at + timedelta(hours=5)) == []


def test_an_escalation_mentions_the_role_and_is_done_once(
    home: Path, tmp_path: Path, slack: FakeSlack
) -> None:
    """At the timeout the escalate_to role's people and groups are mentioned in the gate's
    channel, names without a Slack id escaped; a second check posts and records nothing more,
    and the gate still waits for an approver."""
    settings = Settings(home=home)
    path = write_library(tmp_path / "library", "escalate", timeout_s=60)
    waiting = waiting_incident(settings, path, "inc-esc")
    chat = slack_chat(slack, home)
    later = waiting.at + timedelta(seconds=61)

    first = check_incident(settings, "inc-esc", chat, now=later)
    second = check_incident(settings, "inc-esc", chat, now=later + timedelta(seconds=30))

    assert [a.due.act for a in first.acted] == [Act.ESCALATE] and second.acted == ()
    assert first.settled is None  # escalating settles nothing: no resume is needed
    (post,) = posts_to_ops(slack)
    text = post["text"]
    assert "<@U0IVY>" in text and "<!subteam^S0ONCALL>" in text
    assert "Max &lt;here&gt;" in text and "<here>" not in text  # escaped: no @here
    assert "Timed &lt;containment&gt;" in text
    assert "<@U0SAM>" in text  # who may still pass it
    (record,) = timer_records(home, "inc-esc")
    assert record.event == "gate.timed_out" and record.actor == "engine"
    assert record.data["outcome"] == "escalated"
    assert record.data["escalate_to"] == "incident-commander"
    assert record.data["notified"] == {"people": ["ivy", "max"], "groups": ["oncall"]}
    assert record.data["message"]["ts"] == slack.messages[post["channel"]][-1]["ts"]
    folder = home / "incidents" / "inc-esc"
    assert progress_from_records(read_records(folder)).statuses["contain"] is ItemStatus.WAITING
    assert verify_ledger(folder).ok


def test_a_reminder_names_the_approvers_before_the_timeout(
    home: Path, tmp_path: Path, slack: FakeSlack
) -> None:
    """`remind_before_s` before the timeout, the gate's approvers are mentioned once, with what
    happens at the timeout; the timeout itself is not done early."""
    settings = Settings(home=home)
    path = write_library(tmp_path / "library", "fail", timeout_s=600, remind_before_s=300)
    waiting = waiting_incident(settings, path, "inc-remind")
    chat = slack_chat(slack, home)
    at = waiting.at + timedelta(seconds=301)

    check_incident(settings, "inc-remind", chat, now=at)
    check_incident(settings, "inc-remind", chat, now=at + timedelta(seconds=10))

    (post,) = posts_to_ops(slack)
    assert "<@U0SAM>" in post["text"] and "<@U0BOB>" in post["text"]
    assert "times out in 4 min 59 s" in post["text"] and "the run fails" in post["text"]
    (record,) = timer_records(home, "inc-remind")
    assert record.event == "gate.reminded"
    assert record.data["notified"]["people"] == ["sam", "bob"]
    assert record.data["remind_before_s"] == 300


def test_a_page_posts_the_gate_again_with_its_button(
    home: Path, tmp_path: Path, slack: FakeSlack
) -> None:
    """`on_timeout: page` posts the gate again, mentioning the escalate_to role, with the
    Acknowledge button for this incident and gate; the gate keeps waiting."""
    settings = Settings(home=home)
    path = write_library(tmp_path / "library", "page", timeout_s=60)
    waiting = waiting_incident(settings, path, "inc-page")
    check_incident(
        settings, "inc-page", slack_chat(slack, home), now=waiting.at + timedelta(hours=1)
    )

    (post,) = posts_to_ops(slack)
    assert "Paging incident-commander" in post["text"] and "<@U0IVY>" in post["text"]
    blocks = post["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    button = next(b for b in blocks if b["type"] == "actions")["elements"][0]
    assert button["action_id"] == "runbook_ack_gate"
    assert json.loads(button["value"]) == {"incident": "inc-page", "gate": "contain"}
    (record,) = timer_records(home, "inc-page")
    assert record.data["outcome"] == "paged"


def test_after_a_fail_timeout_a_late_approval_is_refused(
    home: Path, tmp_path: Path, slack: FakeSlack
) -> None:
    """A `fail` timeout fails the gate and asks for the run to walk again; an approver pressing
    the button after it is refused, saying why, and the refusal is in the ledger."""
    settings = Settings(home=home)
    path = write_library(tmp_path / "library", "fail", timeout_s=60)
    waiting = waiting_incident(settings, path, "inc-late")
    check = check_incident(
        settings, "inc-late", slack_chat(slack, home), now=waiting.at + timedelta(seconds=61)
    )
    (record,) = timer_records(home, "inc-late")
    assert record.data["outcome"] == "failed" and check.settled == record.seq
    assert posts_to_ops(slack) == []  # failing is decided, not announced, by the clock

    decision = acknowledge_gate(settings, "inc-late", "contain", slack_identity("U0SAM", "sam"))

    assert decision.outcome is Outcome.REFUSED
    assert "timed out" in decision.reason and "the run failed there" in decision.reason
    folder = home / "incidents" / "inc-late"
    refused = [r for r in read_records(folder) if r.event == "gate.refused"]
    assert [r.data["person"] for r in refused] == ["sam"]
    assert progress_from_records(read_records(folder)).statuses["contain"] is ItemStatus.FAILED


def test_nothing_is_due_before_the_gate_is_reached(home: Path, tmp_path: Path) -> None:
    """A gate without its `gate.waiting` record has no clock running, however late it is."""
    path = write_library(tmp_path / "library", "continue", timeout_s=1)
    assert due([], gates_of(path), datetime.now().astimezone() + timedelta(days=1)) == []
