"""Drill freshness from the incidents under a home: last drill, last real run, staleness."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from flows.drills.freshness import freshness
from flows.evidence.incident import Incident, RunbookInfo, open_incident

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def add(home: Path, incident: str, runbook: str, started: str, drill: bool) -> None:
    info = RunbookInfo(
        id=runbook,
        title=runbook,
        version=1,
        severity="sev2",
        sha256="0" * 64,
        source=f"{runbook}.md",
    )
    record = Incident(id=incident, runbook=info, inputs={}, started_at=started, drill=drill)
    open_incident(home / "incidents", record, "---\n")


def test_never_drilled_runbook_is_stale(tmp_path: Path) -> None:
    """A runbook with real runs but no drill is stale."""
    add(tmp_path, "real-1", "outage", "2025-05-30T10:00:00+00:00", drill=False)
    [row] = freshness(tmp_path, ["outage"], now=NOW)
    assert (row.stale, row.last_drill, row.last_real_incident) == (True, None, "real-1")


def test_latest_drill_within_the_window_is_fresh(tmp_path: Path) -> None:
    """The most recent drill counts; inside max_age_days the runbook is not stale."""
    add(tmp_path, "drill-a", "outage", "2025-01-01T10:00:00+00:00", drill=True)
    add(tmp_path, "drill-b", "outage", "2025-04-01T10:00:00+00:00", drill=True)
    [row] = freshness(tmp_path, ["outage"], max_age_days=90, now=NOW)
    assert (row.stale, row.last_drill_incident) == (False, "drill-b")
    assert row.last_drill == datetime(2025, 4, 1, 10, tzinfo=UTC)


def test_drill_older_than_the_window_is_stale(tmp_path: Path) -> None:
    """A last drill older than max_age_days makes the runbook stale."""
    add(tmp_path, "drill-a", "outage", "2025-01-01T10:00:00+00:00", drill=True)
    [row] = freshness(tmp_path, ["outage"], max_age_days=90, now=NOW)
    assert row.stale


def test_real_runs_do_not_count_as_drills(tmp_path: Path) -> None:
    """A recent real incident neither refreshes the drill date nor hides the last drill."""
    add(tmp_path, "drill-a", "breach", "2025-05-01T10:00:00+00:00", drill=True)
    add(tmp_path, "real-1", "breach", "2025-05-20T10:00:00+00:00", drill=False)
    [row] = freshness(tmp_path, ["breach"], now=NOW)
    assert (row.last_drill_incident, row.last_real_incident) == ("drill-a", "real-1")
