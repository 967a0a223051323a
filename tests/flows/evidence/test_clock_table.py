"""The regulatory clocks table the report and the postmortem share, and the clock records on
the timeline: a clock never started, one filed late, one expired."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from flows.engine.settings import Settings
from flows.evidence.clock_table import clock_rows
from flows.evidence.incident import incident_folder
from flows.evidence.spans import find_rollbacks, story
from flows.evidence.verify import read_records
from flows.runbook.parse import parse_runbook
from flows.times import utc_now
from tests.flows.engine.clocked import ack, open_waiting, write_runbook

DORA = (
    "  - id: dora-major\n    starts_at: determined\n    owner: legal\n"
    "    stops_at: {initial: notified, intermediate: intermediate, final: final}"
)
GATES = ["determined", "notified", "intermediate", "final"]


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


def rows_of(settings: Settings, incident: str) -> list[tuple[str, str, str]]:
    folder = incident_folder(settings.incidents_dir, incident)
    rows = clock_rows(parse_runbook(folder / "runbook.md"), read_records(folder))
    return [(row.milestone, row.outcome, row.status) for row in rows]


def test_a_declared_clock_never_started_says_which_gate_would_start_it(
    home: Path, tmp_path: Path
) -> None:
    """Before the determination the table has one row for the clock, not started."""
    settings = Settings(home=home)
    path = write_runbook(tmp_path / "library", DORA, GATES)
    open_waiting(settings, path, "inc-quiet", ["determined"])
    assert rows_of(settings, "inc-quiet") == [
        ("", "not started: gate determined was not acknowledged", "waiting")
    ]


def test_a_late_filing_and_the_milestones_after_it_are_each_a_row(
    home: Path, tmp_path: Path
) -> None:
    """Filed 6 h past its deadline: `filed late` by how much, marked failed; the intermediate
    report running; the final report not started until the intermediate is filed. The
    timeline tells the expiry and the late filing as failures."""
    settings = Settings(home=home)
    path = write_runbook(tmp_path / "library", DORA, GATES)
    opened = utc_now() - timedelta(hours=30)
    open_waiting(settings, path, "inc-rows", ["determined", "notified"], opened=opened)
    ack(settings, "inc-rows", "determined", "major")
    ack(settings, "inc-rows", "notified", "IN-7")
    (initial, intermediate, final) = rows_of(settings, "inc-rows")
    assert initial[0] == "Initial notification" and initial[2] == "failed"
    assert initial[1].startswith("filed late, 6 h ")
    assert intermediate == ("Intermediate report", "not filed yet", "waiting")
    assert final == (
        "Final report",
        "not started: one month after the intermediate report",
        "waiting",
    )
    entries = read_records(incident_folder(settings.incidents_dir, "inc-rows"))
    told = [m for m in story(entries, find_rollbacks(entries)) if m.event.startswith("clock.")]
    assert [(m.what, m.failed) for m in told] == [
        ("clock dora-major started by lee", False),
        ("clock dora-major: initial expired unfiled", True),
        ("clock dora-major: initial filed late by lee", True),
        ("clock dora-major started by lee", False),
    ]
    assert told[2].detail == "reference: IN-7"
