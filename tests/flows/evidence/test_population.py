"""The incident index: every incident listed, chained, and checked against the folders."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import pytest

from flows.errors import RunbookError
from flows.evidence.census import census, verify_population
from flows.evidence.incident import INCIDENT_FILE, Incident, Trigger, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.population import (
    INDEX_FILE,
    IndexEvent,
    adopt_unlisted,
    note_opened,
    note_standing,
    read_population,
)
from flows.evidence.records import Event, RunbookRef, record_hash, record_line
from flows.runbook.parse import parse_runbook
from tests.support import FIXTURES

GATED = FIXTURES / "runbooks" / "gated.md"


def make_incident(
    incidents: Path,
    incident_id: str,
    *,
    drill: bool = False,
    started_by: str = "cli:alice",
    status: str = "succeeded",
) -> Path:
    """An incident opened as the engine opens one: indexed, then its folder, then records."""
    runbook = parse_runbook(GATED)
    incident = Incident(
        id=incident_id,
        runbook=runbook_info(runbook, GATED),
        inputs={},
        started_at="2026-03-01T10:00:00.000000Z",
        drill=drill,
        trigger=Trigger.CLI,
        started_by=started_by,
    )
    note_opened(incidents, incident, actor=started_by)
    folder = open_incident(incidents, incident, GATED.read_text())
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, incident_id, ref) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}, "drill": drill})
        ledger.record(Event.STEP_SUCCEEDED, step="page", data={"outputs": {}})
        ledger.record(Event.GATE_ACKNOWLEDGED, step="contain", actor="bob", data={"note": ""})
        ledger.record(Event.RUN_FINISHED, data={"status": status, "waiting": []})
    note_standing(incidents, folder)
    return folder


@pytest.fixture
def incidents(tmp_path: Path) -> Path:
    root = tmp_path / "incidents"
    make_incident(root, "inc-a")
    make_incident(root, "inc-b", drill=True, started_by="drill:facilitator")
    return root


def problems_of(root: Path, incident: str) -> list[str]:
    check = verify_population(root)
    return next(c.problems for c in check.incidents if c.incident == incident)


def test_an_intact_population_verifies(incidents: Path) -> None:
    check = verify_population(incidents)
    assert check.ok, check
    assert [c.incident for c in check.incidents] == ["inc-a", "inc-b"]
    assert check.index_entries == 4
    entries = read_population(incidents).entries
    assert [e.event for e in entries] == [IndexEvent.OPENED, IndexEvent.UPDATED] * 2
    assert entries[1].count == 4 and entries[1].standing == "succeeded"


def test_a_deleted_folder_is_detected(incidents: Path) -> None:
    shutil.rmtree(incidents / "inc-a")
    check = verify_population(incidents)
    assert not check.ok
    assert any("folder is gone" in p for p in problems_of(incidents, "inc-a"))


def test_a_folder_replaced_by_another_incident_is_detected(incidents: Path) -> None:
    """inc-b's folder copied over inc-a's: each ledger is intact, but not the one indexed."""
    shutil.rmtree(incidents / "inc-a")
    shutil.copytree(incidents / "inc-b", incidents / "inc-a")
    found = problems_of(incidents, "inc-a")
    assert any("not the one index entry" in p for p in found), found
    assert any("records are of incident 'inc-b'" in p for p in found), found


def test_a_rewritten_ledger_with_the_same_id_is_detected(incidents: Path, tmp_path: Path) -> None:
    """The folder rebuilt from scratch under the same id: a new chain, not the indexed one."""
    shutil.rmtree(incidents / "inc-a")
    elsewhere = tmp_path / "elsewhere"
    make_incident(elsewhere, "inc-a", status="failed")
    shutil.copytree(elsewhere / "inc-a", incidents / "inc-a")
    found = problems_of(incidents, "inc-a")
    assert any("replaced or rewritten" in p for p in found), found


def test_a_folder_added_behind_the_engine_is_detected(incidents: Path, tmp_path: Path) -> None:
    make_incident(tmp_path / "elsewhere", "inc-c")
    shutil.copytree(tmp_path / "elsewhere" / "inc-c", incidents / "inc-c")
    assert any("not in the incident index" in p for p in problems_of(incidents, "inc-c"))
    assert [row.indexed for row in census(incidents) if row.id == "inc-c"] == [False]


def test_a_cut_ledger_is_detected(incidents: Path) -> None:
    ledger = incidents / "inc-a" / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.write_bytes(b"".join(lines[:2]))
    assert not verify_population(incidents).ok
    assert problems_of(incidents, "inc-a")


def test_a_drill_flag_flipped_in_incident_json_is_detected(incidents: Path) -> None:
    path = incidents / "inc-b" / INCIDENT_FILE
    facts = json.loads(path.read_text())
    facts["drill"] = False
    path.write_text(json.dumps(facts))
    found = problems_of(incidents, "inc-b")
    assert any("drill is False, the index listed True" in p for p in found), found


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.update(drill=not e["drill"]),  # edited without rehashing
        lambda e: e.update(count=7),
    ],
)
def test_an_edited_index_entry_breaks_the_chain(incidents: Path, change: object) -> None:
    path = incidents / INDEX_FILE
    lines = path.read_text().splitlines()
    entry = json.loads(lines[0])
    change(entry)  # type: ignore[operator]
    lines[0] = json.dumps(entry, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    check = verify_population(incidents)
    assert not check.ok
    assert check.problems == ["index: entry 1: hash does not match its contents (edited?)"]


def test_a_deleted_index_entry_breaks_the_chain(incidents: Path) -> None:
    path = incidents / INDEX_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[1:]))
    assert "entry 1: found seq 2" in verify_population(incidents).problems[0]


def test_a_rehashed_index_entry_in_non_canonical_form_is_refused(incidents: Path) -> None:
    """Duplicate keys show a reader one value and hash another: refused like in a ledger."""
    path = incidents / INDEX_FILE
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"drill":false', '"drill":true,"drill":false', 1)
    path.write_text("".join(lines))
    assert "canonical form" in verify_population(incidents).problems[0]


def test_a_whole_rewritten_index_is_caught_by_the_head_kept_at_the_last_audit(
    incidents: Path,
) -> None:
    """Rewritten whole, with inc-a dropped and rehashed: only the kept head can tell."""
    kept = verify_population(incidents).index_head
    path = incidents / INDEX_FILE
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    forged, prev = [], "0" * 64
    for entry in (e for e in entries if e["incident"] != "inc-a"):
        entry.update(seq=len(forged) + 1, prev=prev)
        entry["hash"] = record_hash(entry)
        prev = entry["hash"]
        forged.append(record_line(entry))
    path.write_bytes(b"".join(forged))
    shutil.rmtree(incidents / "inc-a")
    assert verify_population(incidents).ok  # self-consistent: the index alone cannot tell
    check = verify_population(incidents, expected_head=kept)
    assert not check.ok
    assert "rewritten or cut" in check.problems[0]


def test_an_id_whose_folder_vanished_cannot_be_opened_again(incidents: Path) -> None:
    shutil.rmtree(incidents / "inc-a")
    with pytest.raises(RunbookError, match="was opened before and had 4 records"):
        make_incident(incidents, "inc-a")


def test_a_retried_open_that_never_recorded_anything_is_not_listed_twice(tmp_path: Path) -> None:
    root = tmp_path / "incidents"
    runbook = parse_runbook(GATED)
    incident = Incident(
        id="inc-r", runbook=runbook_info(runbook, GATED), inputs={}, started_at="2026-03-01"
    )
    first = note_opened(root, incident, actor="alert:alertmanager")
    again = note_opened(root, incident, actor="alert:alertmanager")
    assert again == first
    assert len(read_population(root).entries) == 1


def test_incidents_older_than_the_index_are_adopted_and_then_verify(incidents: Path) -> None:
    (incidents / INDEX_FILE).unlink()
    check = verify_population(incidents)
    assert not check.ok
    assert all("--adopt" in c.problems[0] for c in check.incidents)
    assert adopt_unlisted(incidents) == ["inc-a", "inc-b"]
    assert verify_population(incidents).ok
    assert {e.event for e in read_population(incidents).entries} == {IndexEvent.ADOPTED}
    assert adopt_unlisted(incidents) == []


def test_the_census_gives_every_field_an_auditor_samples_by(incidents: Path) -> None:
    rows = {row.id: row for row in census(incidents)}
    real, drill = rows["inc-a"], rows["inc-b"]
    assert (real.runbook, real.version, real.severity, real.drill) == ("gated", 1, "sev2", False)
    assert real.kind == parse_runbook(GATED).meta.kind
    assert real.status == "succeeded" and real.closed is not None
    assert real.first_response is not None and real.contained is not None
    assert real.commander == "alice"  # who started it from the CLI
    assert drill.drill and drill.commander == "bob"  # a drill's first responder at a gate
    assert real.time_to_respond_s is not None and real.time_to_respond_s >= 0
    assert real.time_to_recover_s is not None
    assert real.time_to_recover_s >= real.time_to_respond_s


def _append_many(root: str, worker: int) -> None:
    runbook = parse_runbook(GATED)
    for n in range(10):
        incident = Incident(
            id=f"w{worker}-{n}",
            runbook=runbook_info(runbook, GATED),
            inputs={},
            started_at="2026-03-01T10:00:00.000000Z",
        )
        note_opened(Path(root), incident, actor="alert:test")


def test_writers_in_several_processes_keep_one_chain(tmp_path: Path) -> None:
    root = tmp_path / "incidents"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(root), w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    population = read_population(root)
    assert population.problem is None
    assert len(population.entries) == 40
    assert len({e.incident for e in population.entries}) == 40
