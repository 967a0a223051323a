"""Steering incidents from the terminal: `runbook status`, `retry`, `skip`, `abort`, `assign`,
`severity` and `note`, each judged against the roster by OS account and written to the ledger."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from flows.cli.app import main
from flows.engine.runner import acknowledge_gate, resume_run, start_run
from flows.engine.settings import Settings
from flows.engine.steering import assign_role
from flows.evidence.census import census_row
from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import slack_identity
from integrations.jira.local import LocalTicketStore

pytestmark = pytest.mark.usefixtures("prefect_api")

ME = getpass.getuser()

RUNBOOK = """---
id: steered
title: Disk filling on a host
kind: outage
severity: sev3
version: 1
owner: "#ops"
{steering}---
# Disk filling

## Ticket
```step
id: ticket
uses: jira.create_issue
with: {{project: OPS, summary: Disk filling}}
```

## Check the flag
```step
id: check
uses: shell.run
with: {{argv: [test, -f, "{flag}"]}}
```

## Contain {{#contain}}

- [ ] Old logs rotated

## Close
```step
id: close
uses: evidence.note
with: {{text: closed}}
```
"""

ROSTER = """roles: {{incident-commander: {{}}, sre: {{}}}}
people:
  me: {{os_users: [{me}], roles: [{role}]}}
  bea: {{slack: [U0BEA], roles: [incident-commander]}}
  sol: {{slack: [U0SOL], roles: [sre]}}
"""


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)
    monkeypatch.setenv("RUNBOOK_PREFECT", "external")


def library(tmp_path: Path, role: str | None = None, steering: str = "") -> Path:
    """The steered runbook, whose `check` step passes once `flag` exists; with `role`, a roster
    where this OS account is `me`, holding it."""
    path = tmp_path / "steered.md"
    flag = tmp_path / "flag"
    path.write_text(RUNBOOK.format(steering=steering, flag=flag))
    if role is not None:
        (tmp_path / "responders.yaml").write_text(ROSTER.format(me=ME, role=role))
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`runbook ARGS` as users run it, in this process: exit code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def events(home: Path, incident: str, step: str | None = None) -> list[Record]:
    records = read_records(home / "incidents" / incident)
    return [r for r in records if step is None or r.step == step]


def failed_at_check(home: Path, tmp_path: Path, incident: str, **start: object) -> Settings:
    settings = Settings(home=home, prefect="external")
    outcome = start_run(settings, tmp_path / "steered.md", {}, incident_id=incident, **start)  # type: ignore[arg-type]
    assert (outcome.status, outcome.steps["check"]) == ("failed", "failed")
    return settings


def test_retry_runs_the_failed_step_once_more_and_makes_no_second_ticket(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runbook retry` by the commander records who asked, runs the failed step once more and
    continues; the ticket step is not run again and the store holds one ticket."""
    library(tmp_path, role="incident-commander")
    failed_at_check(home, tmp_path, "inc-retry")
    (tmp_path / "flag").write_text("fixed")
    code, out, _ = cli(capsys, "retry", "inc-retry", "check", "--no-input")
    assert code == 3  # waiting at the contain gate, past the retried step
    assert "me asked for step 'check' of inc-retry to run again" in out
    check = [r.event for r in events(home, "inc-retry", "check")]
    assert check == [
        Event.STEP_STARTED,
        Event.STEP_FAILED,
        Event.STEP_RETRY_REQUESTED,
        Event.STEP_STARTED,
        Event.STEP_SUCCEEDED,
    ]
    requested = events(home, "inc-retry", "check")[2]
    assert (requested.actor, requested.data["authority"]) == ("me", "role:incident-commander")
    assert requested.data["identity"].startswith(f"{ME}@")
    started = [r for r in events(home, "inc-retry", "ticket") if r.event is Event.STEP_STARTED]
    assert len(started) == 1
    assert len(LocalTicketStore(home / "tickets.db").list_tickets()) == 1
    code, _, err = cli(capsys, "retry", "inc-retry", "check")
    assert code == 1 and "step 'check' is succeeded, not failed" in err
    assert events(home, "inc-retry")[-1].event is Event.STEER_REFUSED
    assert verify_ledger(home / "incidents" / "inc-retry").ok


def test_steering_without_the_role_is_refused_and_recorded(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone holding neither the commander role nor having started the incident is refused
    each act (exit 1, the reason), each refusal is in the ledger, and nothing changes."""
    library(tmp_path, role="sre")
    failed_at_check(home, tmp_path, "inc-refused", started_by="slack:bea")
    (tmp_path / "flag").write_text("fixed")
    attempts = [
        ("retry", "inc-refused", "check"),
        ("skip", "inc-refused", "check", "--reason", "not needed"),
        ("abort", "inc-refused", "--reason", "false alarm"),
        ("assign", "inc-refused", "incident-commander", "me"),
        ("severity", "inc-refused", "sev1"),
        ("resume", "inc-refused"),
    ]
    for attempt in attempts:
        code, _, err = cli(capsys, *attempt)
        assert code == 1, attempt
        assert "refused: me (sre) may not" in err and "it needs role incident-commander" in err
    refused = [r for r in events(home, "inc-refused") if r.event is Event.STEER_REFUSED]
    assert [r.data["act"] for r in refused] == [
        "retry",
        "skip",
        "abort",
        "assign",
        "severity",
        "resume",
    ]
    assert {r.actor for r in refused} == {"me"}
    assert all(r.data["person"] == "me" and r.data["channel"] == "cli" for r in refused)
    assert refused[1].data["reason"].startswith("me (sre) may not skip")
    assert (refused[1].step, refused[1].data["asked"]) == ("check", {"reason": "not needed"})
    code, out, _ = cli(capsys, "note", "inc-refused", "disk", "is", "at", "97%")
    assert code == 0 and "me noted on inc-refused: disk is at 97%" in out
    noted = events(home, "inc-refused")[-1]
    assert (noted.event, noted.data["text"], noted.data["authority"]) == (
        Event.NOTE,
        "disk is at 97%",
        "anyone",
    )
    assert census_row(home / "incidents" / "inc-refused").severity == "sev3"  # type: ignore[union-attr]


def test_the_assigned_commander_may_steer_and_status_shows_them(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Assigned the commander role on an incident, a person without it in the roster may
    steer that incident; status and the census name them and the severity they set."""
    library(tmp_path, role="sre")
    settings = failed_at_check(home, tmp_path, "inc-assigned", started_by="slack:bea")
    assert cli(capsys, "severity", "inc-assigned", "sev1")[0] == 1
    given = assign_role(
        settings, "inc-assigned", slack_identity("U0BEA", "bea"), "incident-commander", "me"
    )
    assert given.allowed, given.message
    code, out, _ = cli(capsys, "severity", "inc-assigned", "sev1")
    assert code == 0 and "set incident inc-assigned to sev1 (was sev3)" in out, _
    changed = events(home, "inc-assigned")[-1]
    assert (changed.event, changed.data["authority"]) == (
        Event.INCIDENT_SEVERITY,
        "assigned:incident-commander",
    )
    row = census_row(home / "incidents" / "inc-assigned")
    assert row is not None and (row.severity, row.commander) == ("sev1", "me")
    code, out, _ = cli(capsys, "status", "inc-assigned")
    assert code == 0
    assert "incident inc-assigned (steered): failed" in out
    assert "sev1, commander me" in out and "assigned incident-commander: me" in out
    assert "failed       check" in out


def test_skip_then_resume_passes_the_step(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runbook skip` records the reason and who, and the run goes on past the step; without
    a roster anyone may, recorded as their OS account."""
    library(tmp_path)
    failed_at_check(home, tmp_path, "inc-skip")
    code, _, err = cli(capsys, "skip", "inc-skip", "check")
    assert code == 2 and "--reason" in err  # a reason is required
    code, out, _ = cli(capsys, "skip", "inc-skip", "check", "--reason", "flag is checked by hand")
    assert code == 3 and "skipped step 'check' of inc-skip: flag is checked by hand" in out
    skipped = [r for r in events(home, "inc-skip", "check") if r.event is Event.STEP_SKIPPED]
    assert len(skipped) == 1
    assert skipped[0].data["reason"] == "flag is checked by hand"
    assert (skipped[0].data["authority"], skipped[0].data["person"]) == ("no roster", None)
    assert skipped[0].actor.startswith(f"{ME}@")
    finished = [r for r in events(home, "inc-skip") if r.event is Event.RUN_FINISHED][-1]
    assert finished.data["steps"]["check"] == "skipped"
    assert finished.data["waiting"] == ["contain"]
    code, _, err = cli(capsys, "skip", "inc-skip", "contain", "--reason", "x")
    assert code == 2 and "a gate is passed by acknowledging it" in err


def test_abort_stops_the_incident_and_a_later_resume_refuses(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runbook abort` records the reason and finishes the run as failed; `runbook resume`,
    `retry` and a gate answer afterwards change nothing more."""
    library(tmp_path, role="incident-commander")
    settings = failed_at_check(home, tmp_path, "inc-abort")
    code, out, _ = cli(capsys, "abort", "inc-abort", "--reason", "false alarm: disk was fine")
    assert code == 0 and "me aborted incident inc-abort: false alarm: disk was fine" in out
    aborted, finished = events(home, "inc-abort")[-2:]
    assert (aborted.event, aborted.actor, aborted.data["reason"]) == (
        Event.RUN_ABORTED,
        "me",
        "false alarm: disk was fine",
    )
    assert (finished.event, finished.data["status"], finished.data["aborted"]["by"]) == (
        Event.RUN_FINISHED,
        "failed",
        "me",
    )
    count = len(events(home, "inc-abort"))
    code, _, err = cli(capsys, "resume", "inc-abort", "--no-input")
    assert code == 2 and "was aborted by me" in err and "never runs again" in err
    with pytest.raises(Exception, match="never runs again"):
        resume_run(settings, "inc-abort")
    assert len(events(home, "inc-abort")) == count
    code, _, err = cli(capsys, "retry", "inc-abort", "check")
    assert code == 1 and "incident inc-abort was aborted by me (false alarm" in err
    code, out, _ = cli(capsys, "status")
    assert "inc-abort" not in out
    assert verify_ledger(home / "incidents" / "inc-abort").ok


def test_status_lists_open_incidents_only(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runbook status` without an id lists the incidents still open (waiting or failed) with
    severity, commander, waiting gates and failed steps; a finished incident is left out."""
    library(tmp_path)
    settings = failed_at_check(home, tmp_path, "inc-failed", started_by=f"cli:{ME}")
    (tmp_path / "flag").write_text("fixed")
    path = tmp_path / "steered.md"
    assert start_run(settings, path, {}, incident_id="inc-waiting").status == "waiting"
    assert start_run(settings, path, {}, incident_id="inc-done").status == "waiting"
    assert acknowledge_gate(
        settings, "inc-done", "contain", slack_identity("U0X", "x")
    ).acknowledged
    assert resume_run(settings, "inc-done").status == "succeeded"
    code, out, _ = cli(capsys, "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "INCIDENT",
        "SEVERITY",
        "STATUS",
        "COMMANDER",
        "WAITING",
        "FAILED",
        "TITLE",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"inc-failed", "inc-waiting"}
    assert rows["inc-failed"][:6] == ["inc-failed", "sev3", "failed", ME, "-", "check"]
    assert rows["inc-waiting"][:6] == ["inc-waiting", "sev3", "waiting", "-", "contain", "-"]
