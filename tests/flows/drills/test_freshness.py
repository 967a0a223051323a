"""Drill freshness: only completed exercises of the runbook as it is now count, rehearsals apart."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.drills.freshness import freshness, parse_max_age
from flows.drills.score import DrillScore
from flows.errors import RunbookError
from flows.evidence.incident import Incident, incident_folder, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, RunbookRef
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook
from tests.support import run_cli

NOW = datetime(2025, 6, 1, tzinfo=UTC)

DOCUMENT = """---
id: outage
title: Outage
kind: outage
severity: sev2
version: 1
owner: "#ops"
---
# Outage

## Assess {#assess}

- [ ] Assessed
"""


def runbook(tmp_path: Path, text: str = DOCUMENT) -> Runbook:
    path = tmp_path / "library" / "outage.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return parse_runbook(path)


def score_of(document: Runbook) -> dict[str, object]:
    score = DrillScore(
        scenario="outage-drill",
        title="Outage drill",
        scenario_sha256="0" * 64,
        runbook=document.id,
        runbook_version=document.meta.version,
        status="succeeded",
        speed=1.0,
        duration_s=600.0,
        facilitator="sam",
        participants=[],
        items=[],
        injects=[],
        notes=[],
        lessons=[],
        on_time=3,
        late=1,
        missed=0,
        failed=0,
    )
    return score.model_dump(mode="json")


def add(
    home: Path,
    incident: str,
    document: Runbook,
    started: str,
    *,
    drill: bool,
    status: str = "succeeded",
    answered_by: str = "cli",
) -> None:
    """An incident of `document` whose run ended `status`; a drill's gate answered through
    `answered_by` (`cli`: a person, `drill`: the scenario's script)."""
    record = Incident(
        id=incident,
        runbook=runbook_info(document, document.path),
        inputs={},
        started_at=started,
        drill=drill,
    )
    incidents = home / "incidents"
    open_incident(incidents, record, document.text)
    ref = RunbookRef(id=document.id, version=document.meta.version, sha256=document.sha256)
    with Ledger(incident_folder(incidents, incident), incident, ref) as ledger:
        if drill:
            script = "script" if answered_by == "drill" else "participants"
            ledger.record(Event.DRILL_STARTED, actor="sam", data={"answers": script})
            via = {"channel": answered_by, "via": answered_by}
            ledger.record(Event.GATE_ACKNOWLEDGED, step="assess", actor="rosa", data=via)
        ledger.record(Event.RUN_FINISHED, data={"status": status})
        if drill:
            ledger.record(Event.DRILL_SCORED, actor="sam", data=score_of(document))


def test_a_completed_drill_within_the_window_is_fresh(tmp_path: Path) -> None:
    """The latest completed drill of the current version keeps the runbook fresh, with its
    score and incident."""
    document = runbook(tmp_path)
    add(tmp_path, "drill-a", document, "2025-01-01T10:00:00Z", drill=True)
    add(tmp_path, "drill-b", document, "2025-04-01T10:00:00Z", drill=True)
    [row] = freshness(tmp_path, [document], "90d", now=NOW)
    assert not row.stale and row.fresh_by is not None
    assert (row.fresh_by.incident, row.fresh_by.kind, row.fresh_by.version) == (
        "drill-b",
        "drill",
        1,
    )
    assert row.fresh_by.score == "3 on time, 1 late, 0 missed, 0 failed"


def test_a_drill_abandoned_at_a_gate_is_not_fresh(tmp_path: Path) -> None:
    """A drill left waiting at its first gate does not count, and the row says why."""
    document = runbook(tmp_path)
    add(tmp_path, "drill-a", document, "2025-05-30T10:00:00Z", drill=True, status="waiting")
    [row] = freshness(tmp_path, [document], now=NOW)
    assert row.stale and row.fresh_by is None
    assert row.reason == "the last drill at v1 (drill-a) did not complete: waiting"


def test_a_drill_of_an_earlier_version_is_not_fresh(tmp_path: Path) -> None:
    """A runbook that changed version and gained a step since its drill is stale."""
    add(tmp_path, "drill-a", runbook(tmp_path), "2025-05-30T10:00:00Z", drill=True)
    changed = DOCUMENT.replace("version: 1", "version: 2") + "\n## Tell {#tell}\n\n- [ ] Told\n"
    [row] = freshness(tmp_path, [runbook(tmp_path, changed)], now=NOW)
    assert row.stale and row.latest is not None and row.latest.incident == "drill-a"
    assert row.reason == "last exercised as v1 (drill-a); it is v2 now"


def test_scripted_rehearsals_are_apart_and_count_only_when_the_runbook_says(
    tmp_path: Path,
) -> None:
    """A drill whose gates the scenario's script answered is a rehearsal: listed, not fresh,
    unless the runbook says `drills: {rehearsals_count: true}`."""
    document = runbook(tmp_path)
    add(tmp_path, "drill-a", document, "2025-05-30T10:00:00Z", drill=True, answered_by="drill")
    [row] = freshness(tmp_path, [document], now=NOW)
    assert row.stale and row.last_rehearsal is not None and row.last_drill is None
    assert "only scripted rehearsals completed at v1 (drill-a)" in row.reason
    counting = DOCUMENT.replace("owner:", "drills: {rehearsals_count: true}\nowner:")
    allowed = runbook(tmp_path, counting)
    add(tmp_path, "drill-b", allowed, "2025-05-30T11:00:00Z", drill=True, answered_by="drill")
    [row] = freshness(tmp_path, [allowed], now=NOW)
    assert not row.stale and row.fresh_by is not None
    assert (row.fresh_by.incident, row.fresh_by.kind) == ("drill-b", "rehearsal")


def test_a_completed_real_run_counts_and_a_failed_one_does_not(tmp_path: Path) -> None:
    """A real incident of the current version that completed keeps the runbook fresh."""
    document = runbook(tmp_path)
    add(tmp_path, "real-1", document, "2025-05-20T10:00:00Z", drill=False, status="failed")
    [row] = freshness(tmp_path, [document], now=NOW)
    assert row.stale and row.last_real is None
    add(tmp_path, "real-2", document, "2025-05-21T10:00:00Z", drill=False)
    [row] = freshness(tmp_path, [document], now=NOW)
    assert not row.stale and row.fresh_by is not None and row.fresh_by.kind == "real"


def test_a_drill_older_than_the_window_is_stale(tmp_path: Path) -> None:
    """Twelve weeks before June 1 is March 9: a drill on March 1 is too old."""
    document = runbook(tmp_path)
    add(tmp_path, "drill-a", document, "2025-03-01T10:00:00Z", drill=True)
    [row] = freshness(tmp_path, [document], "12w", now=NOW)
    assert row.stale and row.reason.endswith("is older than 12 weeks")
    [row] = freshness(tmp_path, [document], "6m", now=NOW)
    assert not row.stale


def test_max_age_takes_days_weeks_and_calendar_months() -> None:
    """`90d`, `90`, `12w` and `6m` read as ages; months are calendar months."""
    end_of_august = datetime(2025, 8, 31, tzinfo=UTC)
    assert parse_max_age("6m").cutoff(end_of_august) == datetime(2025, 2, 28, tzinfo=UTC)
    assert parse_max_age("90").cutoff(NOW) == parse_max_age("90d").cutoff(NOW)
    assert parse_max_age("12w").cutoff(NOW) == datetime(2025, 3, 9, tzinfo=UTC)
    for bad in ("3x", "0d", "-5", "soon"):
        with pytest.raises(RunbookError, match="is not an age"):
            parse_max_age(bad)


def test_freshness_command_json_warnings_and_exit_codes(tmp_path: Path) -> None:
    """`--json` names version, date, score and incident; a home without incidents is a warning
    on stderr; exit 0 when all are fresh, 1 when one is stale, 2 for a bad --max-age."""
    home = tmp_path / "home"
    library = str(tmp_path / "library")
    document = runbook(tmp_path)
    empty = run_cli(home, "freshness", library)
    assert empty.returncode == 1
    assert "warning:" in empty.stderr and "does not exist" in empty.stderr
    add(home, "drill-a", document, datetime.now(UTC).isoformat(), drill=True)
    fresh = run_cli(home, "freshness", library, "--max-age", "12w", "--json")
    assert fresh.returncode == 0, fresh.stderr
    assert "warning" not in fresh.stderr
    [row] = json.loads(fresh.stdout)["runbooks"]
    assert (row["runbook"], row["version"], row["stale"]) == ("outage", 1, False)
    assert row["fresh_by"]["incident"] == "drill-a"
    assert row["fresh_by"]["score"] == "3 on time, 1 late, 0 missed, 0 failed"
    assert row["fresh_by"]["started_at"].startswith(datetime.now(UTC).date().isoformat())
    table = run_cli(home, "freshness", library)
    assert table.returncode == 0
    assert table.stdout.splitlines()[1].split()[:5] == [
        "outage",
        "v1",
        "ok",
        datetime.now(UTC).date().isoformat(),
        "drill",
    ]
    bad = run_cli(home, "freshness", library, "--max-age", "3 fortnights")
    assert bad.returncode == 2 and "is not an age" in bad.stderr
