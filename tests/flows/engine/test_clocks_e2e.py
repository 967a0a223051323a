"""A regulatory clock through whole runs on a real Prefect server: the determination gate
starts it, `runbook status` and `/runbook status` show its deadline and time left, the notified
gate stops it with the filing's reference, and the report, the postmortem and the chain say so;
a notification after its deadline is recorded late."""

from __future__ import annotations

import getpass
import urllib.parse
from datetime import timedelta
from pathlib import Path

import pytest

from flows.cli.app import main
from flows.engine.runner import resume_run, start_run
from flows.engine.settings import Settings
from flows.engine.status import incident_status
from flows.evidence.escaping import md_text
from flows.evidence.incident import Incident, incident_folder, open_incident, runbook_info
from flows.evidence.population import note_opened
from flows.evidence.postmortem import postmortem_markdown
from flows.evidence.records import Event
from flows.evidence.report import render_report
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import os_identity
from flows.runbook.parse import parse_runbook
from flows.times import parse_utc, utc_now, utc_stamp
from flows.triggers.intake import Intake
from flows.triggers.slack import SlackHandlers

pytestmark = pytest.mark.usefixtures("prefect_api")

ME = getpass.getuser()

RUNBOOK = """---
id: privacy-breach
title: Personal data exposed
kind: breach
severity: sev1
version: 1
owner: "#privacy"
clocks:
{clocks}
---
# Personal data exposed

## Record the report
```step
id: opened
uses: evidence.note
with: {{text: "exposure reported"}}
```

## Is it a personal data breach? {{#breach-determined}}

The note is the reasoning: what was read, by whom, since when.

- [ ] Personal data was read by someone not allowed to

## Notify the supervisory authority {{#authority-notified}}

The note is the filing's reference.

- [ ] Notification filed
{extra}
## Close
```step
id: closed
uses: evidence.note
with: {{text: closed}}
```
"""

GDPR = """  - id: gdpr-art33
    starts_at: breach-determined
    stops_at: authority-notified
    owner: legal
    remind_before: 12h"""

DORA = """  - id: dora-major
    starts_at: breach-determined
    owner: legal
    stops_at:
      initial: authority-notified
      intermediate: intermediate-filed
      final: final-filed"""

DORA_GATES = """
## Intermediate report filed {#intermediate-filed}
- [ ] Intermediate report filed

## Final report filed {#final-filed}
- [ ] Final report filed
"""

ROSTER = f"""roles: {{legal: {{}}}}
people:
  lee: {{name: Lee, slack: [U0LEE], os_users: ["{ME}"], roles: [legal]}}
"""


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


def library(tmp_path: Path, clocks: str, extra: str = "") -> Path:
    folder = tmp_path / "library"
    folder.mkdir(exist_ok=True)
    (folder / "responders.yaml").write_text(ROSTER)
    path = folder / "privacy-breach.md"
    path.write_text(RUNBOOK.format(clocks=clocks, extra=extra))
    return path


def ack(capsys: pytest.CaptureFixture[str], incident: str, gate: str, note: str) -> None:
    """`runbook ack` as the responder runs it at the terminal."""
    assert main(["ack", incident, gate, "--note", note]) == 0
    capsys.readouterr()


def slack_status(settings: Settings, tmp_path: Path, incident: str) -> str:
    """`/runbook status INCIDENT` typed by Lee in Slack: the reply's text."""
    body = urllib.parse.urlencode(
        {
            "command": "/runbook",
            "text": f"status {incident}",
            "user_id": "U0LEE",
            "user_name": "lee",
            "channel_id": "C0PRIV",
            "channel_name": "privacy",
            "team_id": "T0001",
            "response_url": "https://hooks.slack.test/commands/1",
            "trigger_id": f"1.2.{incident}",
        }
    ).encode()
    handlers = SlackHandlers(settings, [], Intake(tmp_path / "intake.db"))
    text: str = handlers.command(body)["text"]
    return text


def test_a_gdpr_clock_from_determination_to_notification_on_time(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Determined, shown running with 72 h less a moment left in the terminal and in Slack,
    notified with a reference: `clock.started` then `clock.stopped` with `late: false`, the run
    succeeds, the chain verifies, and the report and postmortem show the clock filed on time."""
    settings = Settings(home=home, prefect="external")
    path = library(tmp_path, GDPR)
    first = start_run(settings, path, {}, incident_id="inc-gdpr")
    assert first.steps["breach-determined"] == "waiting"
    ack(capsys, "inc-gdpr", "breach-determined", "3,200 customer emails read via the leaked key")

    lee = os_identity(ME, "laptop")
    _, status = incident_status(settings, "inc-gdpr", lee)
    assert status is not None
    (line,) = status.clocks
    assert (line.clock, line.milestone, line.standing) == ("gdpr-art33", "notification", "running")
    assert line.left_s is not None and 72 * 3600 - 120 < line.left_s <= 72 * 3600
    assert line.summary.startswith(f"due {parse_utc(str(line.deadline)):%Y-%m-%d %H:%M} UTC, 71 h")
    assert main(["status", "inc-gdpr"]) == 0
    shown = capsys.readouterr().out
    assert f"clock gdpr-art33 notification: {line.summary[:26]}" in shown
    assert "Notification to the supervisory authority (GDPR personal data breach" in shown
    in_slack = slack_status(settings, tmp_path, "inc-gdpr")
    assert ":alarm_clock: *Notification to the supervisory authority" in in_slack
    assert "71 h" in in_slack and "left" in in_slack

    assert resume_run(settings, "inc-gdpr").steps["authority-notified"] == "waiting"
    ack(capsys, "inc-gdpr", "authority-notified", "CNIL notification 2026-0042")
    assert resume_run(settings, "inc-gdpr").status == "succeeded"

    folder = incident_folder(settings.incidents_dir, "inc-gdpr")
    clocks = [r for r in read_records(folder) if r.event.value.startswith("clock.")]
    assert [r.event for r in clocks] == [Event.CLOCK_STARTED, Event.CLOCK_STOPPED]
    assert clocks[1].data["late"] is False
    assert clocks[1].data["reference"] == "CNIL notification 2026-0042"
    assert verify_ledger(folder).ok

    report = render_report(folder)
    assert "<h2>Regulatory clocks</h2>" in report and "filed on time" in report
    assert "reference: CNIL notification 2026-0042" in report
    assert "3,200 customer emails read via the leaked key" in report
    draft = postmortem_markdown(folder)
    assert "## Regulatory clocks" in draft and "not legal advice" in draft
    row = next(line for line in draft.splitlines() if line.startswith("| `gdpr-art33`"))
    assert "filed on time" in row and md_text("CNIL notification 2026-0042") in row

    _, done = incident_status(settings, "inc-gdpr", lee)
    assert done is not None and done.clocks[0].standing == "filed on time"


def test_a_notification_after_the_deadline_is_recorded_late(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An incident opened 30 h before it was classified as major: DORA's initial notification
    (at most 24 h from awareness) has expired when the clock starts, status says EXPIRED, and
    the filing is recorded late, in the ledger and the report."""
    settings = Settings(home=home, prefect="external")
    path = library(tmp_path, DORA, DORA_GATES)
    runbook = parse_runbook(path)
    opened = utc_now() - timedelta(hours=30)
    incident = Incident(
        id="inc-dora",
        runbook=runbook_info(runbook, path.resolve()),
        inputs={},
        started_at=utc_stamp(opened),
    )
    note_opened(settings.incidents_dir, incident, actor="engine")
    open_incident(settings.incidents_dir, incident, runbook.text)
    assert resume_run(settings, "inc-dora").steps["breach-determined"] == "waiting"
    ack(capsys, "inc-dora", "breach-determined", "major: card payments down for 30 h")

    _, status = incident_status(settings, "inc-dora", os_identity(ME, "laptop"))
    assert status is not None
    initial = next(line for line in status.clocks if line.milestone == "initial")
    assert initial.standing == "expired" and initial.summary.startswith("EXPIRED: was due ")

    assert resume_run(settings, "inc-dora").steps["authority-notified"] == "waiting"
    ack(capsys, "inc-dora", "authority-notified", "DORA initial notification IN-7")
    folder = incident_folder(settings.incidents_dir, "inc-dora")
    records = read_records(folder)
    expired = next(r for r in records if r.event is Event.CLOCK_EXPIRED)
    stopped = next(r for r in records if r.event is Event.CLOCK_STOPPED)
    assert expired.seq < stopped.seq and expired.data["milestone"] == "initial"
    assert (stopped.data["milestone"], stopped.data["late"]) == ("initial", True)
    assert stopped.data["late_by_s"] > 5 * 3600
    assert verify_ledger(folder).ok
    assert "filed late, 6 h" in render_report(folder)
