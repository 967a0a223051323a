"""What verify checks beyond the chain: each record's exact bytes, the head's size, the folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from flows.errors import RunbookError
from flows.evidence.bundle import export_bundle
from flows.evidence.incident import DOCUMENT_FILE, INCIDENT_FILE, incident_facts
from flows.evidence.ledger import Ledger
from flows.evidence.records import HEAD_FILE, Event, Head, RunbookRef, parse_head, record_hash
from flows.evidence.verify import SEAL_FILE, verify_ledger
from tests.flows.evidence.ledgers import lines, rewrite, write_ledger

DOCUMENT = b"---\nid: leak\n---\n# Leak\n"
DOCUMENT_REF = RunbookRef(id="leak", version=1, sha256=hashlib.sha256(DOCUMENT).hexdigest())


def incident_folder(folder: Path, incident: str = "INC-1") -> Path:
    """An evidence folder as the engine leaves it: the ledger, runbook.md and incident.json."""
    with Ledger(folder, incident, DOCUMENT_REF) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}})
        ledger.record(Event.STEP_SUCCEEDED, step="ticket", data={"outputs": {"key": "SEC-1"}})
    (folder / DOCUMENT_FILE).write_bytes(DOCUMENT)
    facts = {"id": incident, "runbook": {"id": "leak", "sha256": DOCUMENT_REF.sha256}}
    (folder / INCIDENT_FILE).write_text(json.dumps(facts))
    return folder


def test_an_engine_folder_verifies(tmp_path: Path) -> None:
    """The ledger, document and facts the engine writes pass every check."""
    assert verify_ledger(incident_folder(tmp_path)).ok


def test_a_duplicate_key_is_refused_though_the_hash_matches(tmp_path: Path) -> None:
    """`"actor":"mallory","actor":"engine"` hashes as engine but would show mallory to a reader."""
    folder = write_ledger(tmp_path, 3)
    records = lines(folder)
    records[1] = records[1].replace(b'"actor":"engine"', b'"actor":"mallory","actor":"engine"')
    rewrite(folder, records)
    result = verify_ledger(folder)
    assert not result.ok
    assert result.bad_seq == 2
    assert "canonical form" in str(result.problem)


def test_extra_spacing_in_a_record_is_refused(tmp_path: Path) -> None:
    """A record re-spaced (same values, same hash) is not the line the writer wrote."""
    folder = write_ledger(tmp_path, 3)
    records = lines(folder)
    records[0] = json.dumps(json.loads(records[0])).encode() + b"\n"
    rewrite(folder, records)
    assert record_hash(json.loads(records[0])) == json.loads(records[0])["hash"]
    result = verify_ledger(folder)
    assert not result.ok
    assert result.bad_seq == 1


def test_a_head_whose_size_is_not_the_ledgers_is_refused(tmp_path: Path) -> None:
    """head.json's size must be the byte length of the records it counts."""
    folder = write_ledger(tmp_path, 3)
    head = parse_head((folder / HEAD_FILE).read_bytes())
    assert head is not None
    (folder / HEAD_FILE).write_bytes(Head(head.count, head.hash, head.size + 7).encode())
    result = verify_ledger(folder)
    assert not result.ok
    assert "bytes" in str(result.problem)


def test_another_incidents_ledger_in_the_folder_is_refused(tmp_path: Path) -> None:
    """A ledger and head of INC-2 dropped beside INC-1's incident.json do not verify."""
    folder = incident_folder(tmp_path / "inc-1", "INC-1")
    other = incident_folder(tmp_path / "inc-2", "INC-2")
    for name in ("ledger.jsonl", HEAD_FILE):
        (folder / name).write_bytes((other / name).read_bytes())
    result = verify_ledger(folder)
    assert not result.ok
    assert INCIDENT_FILE in str(result.problem)


def test_an_edited_document_is_refused(tmp_path: Path) -> None:
    """runbook.md must hash to the sha256 every record names."""
    folder = incident_folder(tmp_path)
    (folder / DOCUMENT_FILE).write_bytes(DOCUMENT + b"- [ ] a gate nobody ran\n")
    result = verify_ledger(folder)
    assert not result.ok
    assert DOCUMENT_FILE in str(result.problem)


def test_a_sealed_ledger_without_its_seal_is_refused(tmp_path: Path) -> None:
    """Deleting seal.json while the evidence.sealed record stays is detected."""
    folder = incident_folder(tmp_path)
    with Ledger(folder, "INC-1", DOCUMENT_REF) as ledger:
        ledger.record(Event.EVIDENCE_SEALED, data={"root": "00" * 32, "count": 2})
    assert not (folder / SEAL_FILE).exists()
    result = verify_ledger(folder)
    assert not result.ok
    assert SEAL_FILE in str(result.problem)


def test_facts_of_incident_json_outside_the_chain_are_checked_against_run_started(
    tmp_path: Path,
) -> None:
    """Flipping incident.json's drill flag, start time or alert no longer passes verify."""
    folder = tmp_path / "inc"
    facts = {
        "id": "INC-1",
        "runbook": {"id": "leak", "sha256": DOCUMENT_REF.sha256},
        "started_at": "2026-12-01T00:00:00Z",
        "drill": False,
        "alert": {"labels": {"alertname": "LeakedSecretDetected"}},
    }
    with Ledger(folder, "INC-1", DOCUMENT_REF) as ledger:
        ledger.record(Event.RUN_STARTED, data={"drill": False, "incident": incident_facts(facts)})
    (folder / DOCUMENT_FILE).write_bytes(DOCUMENT)
    (folder / INCIDENT_FILE).write_text(json.dumps(facts))
    assert verify_ledger(folder).ok
    for change in ({"drill": True}, {"started_at": "2020-01-01T00:00:00Z"}, {"alert": None}):
        (folder / INCIDENT_FILE).write_text(json.dumps(facts | change))
        result = verify_ledger(folder)
        assert not result.ok, change
        assert next(iter(change)) in str(result.problem)


def test_an_older_ledgers_drill_flag_is_checked_too(tmp_path: Path) -> None:
    """A run.started of a ledger written before facts were recorded still pins the drill flag."""
    with Ledger(tmp_path, "INC-1", DOCUMENT_REF) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}, "drill": False})
    (tmp_path / DOCUMENT_FILE).write_bytes(DOCUMENT)
    facts = {"id": "INC-1", "runbook": {"id": "leak", "sha256": DOCUMENT_REF.sha256}}
    (tmp_path / INCIDENT_FILE).write_text(json.dumps(facts | {"drill": False}))
    assert verify_ledger(tmp_path).ok
    (tmp_path / INCIDENT_FILE).write_text(json.dumps(facts | {"drill": True}))
    assert "drill" in str(verify_ledger(tmp_path).problem)


def with_artifact(folder: Path, content: bytes = b"pid 1 init\n") -> Path:
    """An engine folder whose ledger keeps the custody record of one stored artifact."""
    incident_folder(folder)
    sha256 = hashlib.sha256(content).hexdigest()
    path = folder / "artifacts" / sha256[:2] / sha256
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with Ledger(folder, "INC-1", DOCUMENT_REF) as ledger:
        data = {"collector": "processes", "sha256": sha256, "size": len(content)}
        ledger.record(Event.ARTIFACT_COLLECTED, step="snap", data=data)
    return path


def test_a_swapped_artifact_fails_folder_verify(tmp_path: Path) -> None:
    """An artifact whose bytes were replaced no longer hashes to its custody record."""
    path = with_artifact(tmp_path)
    assert verify_ledger(tmp_path).ok
    path.write_bytes(b"pid 1 something else\n")
    result = verify_ledger(tmp_path)
    assert not result.ok
    assert "does not hash" in str(result.problem)


def test_a_deleted_artifact_fails_folder_verify(tmp_path: Path) -> None:
    """An artifact removed from the folder is named as missing."""
    with_artifact(tmp_path).unlink()
    result = verify_ledger(tmp_path)
    assert not result.ok
    assert "is missing" in str(result.problem)


def test_a_swapped_artifact_is_refused_at_export(tmp_path: Path) -> None:
    """Export refuses a folder whose artifact is not the one in custody."""
    path = with_artifact(tmp_path / "inc")
    path.write_bytes(b"forged\n")
    with pytest.raises(RunbookError, match="does not hash"):
        export_bundle(tmp_path / "inc", tmp_path / "bundle.zip")
