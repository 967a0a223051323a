"""Regulatory clocks watched by the server's clock: the owner role reminded once per milestone
before its deadline, and expiry recorded once, through the server's gate clock scan and the
real slack_sdk client against a loopback fake Slack."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.contract.ports import ChatSystem
from flows.engine.settings import Settings
from flows.evidence.incident import incident_folder
from flows.evidence.ledger import Ledger
from flows.evidence.population import note_standing
from flows.evidence.records import Event, RunbookRef
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.parse import parse_runbook
from flows.times import parse_utc
from flows.triggers.gate_clock import GateClock
from flows.triggers.intake import Intake
from integrations.config import SlackConfig
from integrations.idempotency import IdempotencyMap
from integrations.slack.web import SlackChat
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.engine.clocked import ack, clock_records, open_waiting, write_runbook

GDPR = (
    "  - {id: gdpr-art33, starts_at: determined, stops_at: notified, owner: legal,"
    " remind_before: 12h}"
)


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("ops")
        yield fake


@pytest.fixture
def gate_clock(home: Path, slack: FakeSlack, tmp_path: Path) -> Iterator[GateClock]:
    """The server's gate clock over `home`, posting through the real Slack client."""
    settings = Settings(home=home)
    config = SlackConfig(bot_token=slack.token, api_url=slack.url)
    chat: ChatSystem = SlackChat(config, IdempotencyMap(home / "idempotency.db"))
    intake = Intake(tmp_path / "intake.db")
    yield GateClock(settings, intake, lambda: chat, interval=3600)


def posts(slack: FakeSlack) -> list[dict[str, Any]]:
    return [call.body for call in slack.calls("chat.postMessage")]


def started_clock(settings: Settings, tmp_path: Path, incident: str) -> Any:
    """An incident whose GDPR clock started: the `clock.started` record."""
    path = write_runbook(tmp_path / "library", GDPR, ["determined", "notified"])
    open_waiting(settings, path, incident, ["determined", "notified"])
    ack(settings, incident, "determined", "personal data read")
    (started,) = clock_records(settings, incident)
    return started


def test_the_owner_is_reminded_once_before_the_deadline(
    home: Path, tmp_path: Path, slack: FakeSlack, gate_clock: GateClock
) -> None:
    """Nothing before `remind_before` ahead of the deadline; then one message mentioning the
    owner role's people, with the deadline and the gate to acknowledge, and one
    `clock.reminded`; a later scan posts and records nothing more."""
    settings = Settings(home=home)
    started = started_clock(settings, tmp_path, "inc-remind")
    deadline = parse_utc(started.data["milestones"][0]["deadline"])

    gate_clock.scan(deadline - timedelta(hours=12, minutes=1))
    assert posts(slack) == [] and len(clock_records(settings, "inc-remind")) == 1

    gate_clock.scan(deadline - timedelta(hours=11))
    gate_clock.scan(deadline - timedelta(hours=10))
    (post,) = posts(slack)
    text = post["text"]
    assert "<@U0LEE>" in text and "Notification to the supervisory authority" in text
    assert "in 11 h 0 min" in text and deadline.strftime("%Y-%m-%d %H:%M UTC") in text
    assert "acknowledge *Notified*" in text and "GDPR (Regulation (EU) 2016/679) Art. 33(1)" in text
    reminded = clock_records(settings, "inc-remind")[1:]
    assert [r.event for r in reminded] == [Event.CLOCK_REMINDED]
    data = reminded[0].data
    assert (data["milestone"], data["owner"], data["notified"]["people"]) == (
        "notification",
        "legal",
        ["lee"],
    )
    assert data["message"]["ts"] == slack.messages[post["channel"]][-1]["ts"]


def test_an_unfiled_deadline_is_recorded_expired_once(
    home: Path, tmp_path: Path, slack: FakeSlack, gate_clock: GateClock
) -> None:
    """Past the deadline with no filing: `clock.expired`, once, and no reminder any more (it
    would only arrive late); the chain verifies."""
    settings = Settings(home=home)
    started = started_clock(settings, tmp_path, "inc-expired")
    deadline = parse_utc(started.data["milestones"][0]["deadline"])
    gate_clock.scan(deadline + timedelta(minutes=1))
    gate_clock.scan(deadline + timedelta(hours=1))
    events = [r.event for r in clock_records(settings, "inc-expired")]
    assert events == [Event.CLOCK_STARTED, Event.CLOCK_EXPIRED]
    assert posts(slack) == []
    assert verify_ledger(incident_folder(settings.incidents_dir, "inc-expired")).ok


def test_a_filed_milestone_is_neither_reminded_nor_expired(
    home: Path, tmp_path: Path, slack: FakeSlack, gate_clock: GateClock
) -> None:
    """Once the notified gate is acknowledged the clock is stopped for good."""
    settings = Settings(home=home)
    started = started_clock(settings, tmp_path, "inc-filed")
    ack(settings, "inc-filed", "notified", "DPA ref 12")
    deadline = parse_utc(started.data["milestones"][0]["deadline"])
    gate_clock.scan(deadline - timedelta(hours=1))
    gate_clock.scan(deadline + timedelta(hours=1))
    events = [r.event for r in clock_records(settings, "inc-filed")]
    assert events == [Event.CLOCK_STARTED, Event.CLOCK_STOPPED]
    assert posts(slack) == []


def test_a_failed_run_does_not_stop_the_legal_clock(
    home: Path, tmp_path: Path, slack: FakeSlack, gate_clock: GateClock
) -> None:
    """An incident whose run ended failed is still watched: its owner is still reminded."""
    settings = Settings(home=home)
    started = started_clock(settings, tmp_path, "inc-failed")
    folder = incident_folder(settings.incidents_dir, "inc-failed")
    runbook = parse_runbook(folder / "runbook.md")
    ref = RunbookRef(id=runbook.id, version=1, sha256=runbook.sha256)
    with Ledger(folder, "inc-failed", ref) as ledger:
        ledger.record(Event.RUN_FINISHED, data={"status": "failed", "waiting": []})
    note_standing(settings.incidents_dir, folder)
    deadline = parse_utc(started.data["milestones"][0]["deadline"])
    gate_clock.scan(deadline - timedelta(hours=2))
    assert len(posts(slack)) == 1
    assert read_records(folder)[-1].event is Event.CLOCK_REMINDED
