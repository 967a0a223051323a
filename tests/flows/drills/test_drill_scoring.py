"""Honest drill scores: drill time across resumes, the documents as first run, final states."""

from __future__ import annotations

import hashlib
import time
import zipfile
from pathlib import Path

import pytest

from flows.drills.drill import resume_drill, resume_incident, run_drill
from flows.drills.score import DrillScore
from flows.engine.runner import acknowledge_gate
from flows.engine.steering import retry_step
from flows.evidence.bundle import export_bundle, verify_bundle
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import named_identity
from tests.flows.drills.tiny import (
    FAST,
    GATED,
    SCENARIO,
    UNANSWERED,
    settings_for,
    write_drill,
)

ALICE = named_identity("alice")


def latest_score(folder: Path) -> DrillScore:
    scored = [r for r in read_records(folder) if r.event == "drill.scored"]
    return DrillScore.model_validate(scored[-1].data)


@pytest.mark.usefixtures("prefect_api")
def test_a_drill_resumed_twice_is_scored_on_drill_time(home: Path, tmp_path: Path) -> None:
    """The seconds spent answering between runs do not count: the clock stands while the drill
    waits, goes on where it stopped, and runs at --speed only while the drill runs."""
    settings, speed = settings_for(home), 120.0
    began = time.monotonic()
    first = run_drill(settings, write_drill(tmp_path, UNANSWERED, GATED), speed=speed)
    incident = first.outcome.incident
    for gate in ("contain", "done"):
        time.sleep(3)  # someone typing `runbook ack`: six drill minutes, if the clock ran
        acknowledge_gate(settings, incident, gate, ALICE)
        result = resume_drill(settings, incident)
    elapsed = time.monotonic() - began
    assert result.outcome.status == "succeeded"
    found = read_records(home / "incidents" / incident)
    stops = [r.data["duration_s"] for r in found if r.event == "drill.scored"]
    resumed = [r.data["drill_s"] for r in found if r.event == "drill.resumed"]
    # The second run goes on from the drill time the first stopped at; the third had nothing
    # left to run once `done` was answered, so its clock never started and the time stands.
    assert resumed == [stops[0]]
    assert stops[2] == stops[1]
    score = result.score
    assert score.wall_s is not None and score.wall_s < elapsed - 6
    assert score.duration_s == pytest.approx(score.wall_s * speed, abs=1.0)
    items = {item.id: item for item in score.items}
    assert items["contain"].at_s == stops[0]  # answered while the clock stood
    assert items["done"].at_s == stops[1]
    assert items["contain"].at is not None  # the wall time beside the drill time


@pytest.mark.usefixtures("prefect_api")
def test_a_resumed_drill_is_scored_against_the_documents_it_first_ran(
    home: Path, tmp_path: Path
) -> None:
    """Editing the library runbook (a new version with another step) and the scenario while a
    drill waits changes nothing: it resumes and is scored with the copies it started with."""
    settings = settings_for(home)
    path = write_drill(tmp_path, UNANSWERED, GATED)
    first = run_drill(settings, path, speed=FAST)
    incident = first.outcome.incident
    extra = '\n## Extra\n\n```step\nid: extra\nuses: evidence.note\nwith: {text: "x"}\n```\n'
    (tmp_path / "tiny.md").write_text(GATED.replace("version: 1", "version: 2") + extra)
    path.write_text(UNANSWERED.replace("contain: 10m", "contain: 1s"))
    for gate in ("contain", "done"):
        acknowledge_gate(settings, incident, gate, ALICE)
        result = resume_drill(settings, incident)
    score = result.score
    assert result.outcome.status == "succeeded"
    assert [item.id for item in score.items] == ["ticket", "look", "contain", "tell", "done"]
    assert (score.runbook_version, score.scenario_sha256) == (1, first.score.scenario_sha256)
    assert {item.id: item.target_s for item in score.items}["contain"] == 600
    assert score.missed == 0


@pytest.mark.usefixtures("prefect_api")
def test_a_step_that_failed_then_succeeded_is_recovered(home: Path, tmp_path: Path) -> None:
    """A ticket step an inject failed, retried and then done, counts as recovered: its final
    state, not its first."""
    settings = settings_for(home)
    inject = "injects:\n  - {at: 0, kind: fail_integration, system: tickets, text: Jira down}\n"
    first = run_drill(settings, write_drill(tmp_path, SCENARIO + inject), speed=FAST)
    incident = first.outcome.incident
    assert {i.id: i.verdict for i in first.score.items}["ticket"] == "inject-caused"
    assert retry_step(settings, incident, ALICE, "ticket").allowed
    assert resume_incident(settings, incident).status == "succeeded"
    score = latest_score(home / "incidents" / incident)
    ticket = {item.id: item for item in score.items}["ticket"]
    assert (ticket.verdict, ticket.status) == ("recovered", "succeeded")
    assert ticket.failed_at_s is not None and ticket.at_s is not None
    assert ticket.failed_at_s <= ticket.at_s
    assert (score.failed, score.inject_caused, score.recovered) == (0, 0, 1)


@pytest.mark.usefixtures("prefect_api")
def test_only_items_with_a_target_are_missed(home: Path, tmp_path: Path) -> None:
    """Left waiting at `contain` (target 10m), the drill misses it; the chat step and the gate
    after it have no target and are only not reached."""
    result = run_drill(settings_for(home), write_drill(tmp_path, UNANSWERED, GATED), speed=FAST)
    verdicts = {item.id: item.verdict for item in result.score.items}
    assert result.outcome.status == "waiting"
    assert (verdicts["contain"], verdicts["tell"], verdicts["done"]) == (
        "missed",
        "not-reached",
        "not-reached",
    )
    assert result.score.missed == 1


@pytest.mark.usefixtures("prefect_api")
def test_the_scenario_as_run_is_kept_in_the_chain_and_checked(home: Path, tmp_path: Path) -> None:
    """The scenario's bytes are kept beside runbook.md, drill.started holds their hash, the bundle
    carries them, and verify fails when the copy is edited or removed."""
    path = write_drill(tmp_path)
    result = run_drill(settings_for(home), path, speed=FAST)
    folder = home / "incidents" / result.outcome.incident
    copy = folder / "scenario.yaml"
    assert copy.read_bytes() == path.read_bytes()
    [started] = [r for r in read_records(folder) if r.event == "drill.started"]
    assert started.data["scenario_sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    assert verify_ledger(folder).ok
    bundle = export_bundle(folder, tmp_path / "drill.zip")
    assert "scenario.yaml" in zipfile.ZipFile(bundle).namelist()
    assert verify_bundle(bundle).ok
    copy.chmod(0o644)
    copy.write_text(path.read_text().replace("contain: 10m", "contain: 1h"))
    edited = verify_ledger(folder)
    assert not edited.ok and edited.problem is not None
    assert edited.problem.startswith("scenario.yaml is not the scenario record")
    copy.unlink()
    missing = verify_ledger(folder)
    assert missing.problem is not None and missing.problem.startswith("scenario.yaml is missing")
