"""The evidence bundle: what export writes, and what offline verification catches."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from flows.errors import RunbookError
from flows.evidence.bundle import MANIFEST_FILE, export_bundle, verify_bundle
from flows.evidence.incident import Incident, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import LEDGER_FILE, Event, RunbookRef
from flows.evidence.seal import seal_incident
from flows.runbook.parse import parse_runbook
from tests.fakes.tsa import Authority, running_tsa
from tests.support import FIXTURES

GATED = FIXTURES / "runbooks" / "gated.md"
INCIDENT_ID = "gated-20260101-000000-bndl"
PROCESSES = b"PID CMD\n1 init\n42 sshd\n"


def make_incident(root: Path) -> Path:
    """An incident folder of the gated runbook with one collected artifact and a few records."""
    runbook = parse_runbook(GATED)
    info = runbook_info(runbook, GATED)
    incident = Incident(
        id=INCIDENT_ID, runbook=info, inputs={}, started_at="2026-01-01T00:00:00+00:00"
    )
    folder = open_incident(root, incident, GATED.read_text())
    sha256 = hashlib.sha256(PROCESSES).hexdigest()
    path = f"artifacts/{sha256[:2]}/{sha256}"
    (folder / path).parent.mkdir(parents=True)
    (folder / path).write_bytes(PROCESSES)
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, INCIDENT_ID, ref) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}, "drill": False})
        data = {"collector": "processes", "sha256": sha256, "size": len(PROCESSES), "path": path}
        ledger.record(Event.ARTIFACT_COLLECTED, step="snap", data=data)
        ledger.record(Event.RUN_FINISHED, data={"status": "succeeded", "waiting": []})
    return folder


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A sealed incident exported to a zip."""
    folder = make_incident(tmp_path / "incidents")
    seal_incident(folder)
    return export_bundle(folder, tmp_path / "out" / "bundle.zip")


def rewrite(bundle: Path, change: dict[str, bytes | None]) -> None:
    """Rewrite the zip with members replaced (bytes), removed (None) or added (new names)."""
    with zipfile.ZipFile(bundle) as source:
        members = {name: source.read(name) for name in source.namelist()}
    for name, data in change.items():
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    with zipfile.ZipFile(bundle, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)


def read(bundle: Path, name: str) -> bytes:
    """One member of the bundle."""
    with zipfile.ZipFile(bundle) as source:
        return source.read(name)


def artifact_name() -> str:
    """Where the artifact sits in the bundle."""
    sha256 = hashlib.sha256(PROCESSES).hexdigest()
    return f"artifacts/{sha256[:2]}/{sha256}"


def test_bundle_holds_the_evidence_and_a_manifest_of_it(bundle: Path) -> None:
    """The zip has the ledger, head, incident, runbook, seal, artifact, report and manifest."""
    with zipfile.ZipFile(bundle) as source:
        names = set(source.namelist())
    assert names == {
        "ledger.jsonl",
        "head.json",
        "incident.json",
        "runbook.md",
        "seal.json",
        artifact_name(),
        "report.html",
        MANIFEST_FILE,
    }
    manifest = json.loads(read(bundle, MANIFEST_FILE))
    assert {entry["path"] for entry in manifest["files"]} == names - {MANIFEST_FILE}
    assert manifest["ledger"]["count"] == 4


def test_manifest_hashes_are_the_files_hashes(bundle: Path) -> None:
    """Each manifest entry's sha256 and size are those of the member."""
    manifest = json.loads(read(bundle, MANIFEST_FILE))
    for entry in manifest["files"]:
        data = read(bundle, entry["path"])
        assert (entry["sha256"], entry["size"]) == (hashlib.sha256(data).hexdigest(), len(data))


def test_report_shows_the_verification_at_export(bundle: Path) -> None:
    """The report in the bundle is the incident's HTML report with the ledger check."""
    report = read(bundle, "report.html").decode()
    assert report.startswith("<!DOCTYPE html>") and INCIDENT_ID in report
    assert '<span class="badge succeeded">verified</span>' in report


def test_an_intact_bundle_verifies(bundle: Path) -> None:
    """verify_bundle accepts the bundle as exported and counts what it holds."""
    check = verify_bundle(bundle)
    assert (check.ok, check.problems, check.records, check.artifacts) == (True, [], 4, 1)


def test_a_timestamped_bundle_verifies_against_the_tsa_root(tmp_path: Path) -> None:
    """A bundle sealed with a TSA verifies offline given the TSA's root certificate."""
    folder = make_incident(tmp_path / "incidents")
    authority = Authority.create()
    with running_tsa(authority) as tsa:
        seal_incident(folder, tsa_url=tsa.url)
    bundle = export_bundle(folder, tmp_path / "bundle.zip")
    check = verify_bundle(bundle, trusted_roots=[authority.ca_pem()])
    assert check.ok, check.problems


def test_export_refuses_a_broken_ledger(tmp_path: Path) -> None:
    """A ledger that does not verify is not exported."""
    folder = make_incident(tmp_path)
    path = folder / LEDGER_FILE
    path.write_text(path.read_text().replace("succeeded", "failed"))
    with pytest.raises(RunbookError, match="cannot export: record 3"):
        export_bundle(folder, tmp_path / "bundle.zip")


def test_a_changed_artifact_is_caught(bundle: Path) -> None:
    """An artifact whose bytes changed fails its manifest hash and its ledger hash."""
    rewrite(bundle, {artifact_name(): b"PID CMD\n1 init\n"})
    problems = verify_bundle(bundle).problems
    assert f"{artifact_name()}: content differs from {MANIFEST_FILE} (changed?)" in problems
    assert any(p.startswith("record 2 (processes): artifact") for p in problems)


def test_a_changed_ledger_line_is_caught(bundle: Path) -> None:
    """An edited ledger record fails its manifest hash and the chain names the record."""
    ledger = read(bundle, "ledger.jsonl").replace(b"succeeded", b"failed")
    rewrite(bundle, {"ledger.jsonl": ledger})
    problems = verify_bundle(bundle).problems
    assert f"ledger.jsonl: content differs from {MANIFEST_FILE} (changed?)" in problems
    assert "ledger.jsonl: record 3: hash does not match its contents (edited?)" in problems


def test_a_removed_file_is_caught(bundle: Path) -> None:
    """A file listed in the manifest but absent from the zip is named."""
    rewrite(bundle, {"runbook.md": None})
    assert verify_bundle(bundle).problems == [f"runbook.md: listed in {MANIFEST_FILE} but missing"]


def test_a_removed_artifact_is_named_by_its_record(bundle: Path) -> None:
    """An artifact gone from both zip and manifest is still missed by its ledger record."""
    manifest = json.loads(read(bundle, MANIFEST_FILE))
    manifest["files"] = [e for e in manifest["files"] if e["path"] != artifact_name()]
    rewrite(bundle, {artifact_name(): None, MANIFEST_FILE: json.dumps(manifest).encode()})
    problems = verify_bundle(bundle).problems
    assert problems == [f"record 2 (processes): artifact {artifact_name()} is missing"]


def test_an_added_file_is_caught(bundle: Path) -> None:
    """A file in the zip that the manifest does not list is named."""
    rewrite(bundle, {"artifacts/ff/extra": b"planted"})
    problems = verify_bundle(bundle).problems
    assert problems == [f"artifacts/ff/extra: not listed in {MANIFEST_FILE} (added?)"]


def test_an_edited_manifest_is_caught(bundle: Path) -> None:
    """A manifest whose head no longer matches the ledger is caught."""
    manifest = json.loads(read(bundle, MANIFEST_FILE))
    manifest["ledger"]["head_hash"] = "ab" * 32
    rewrite(bundle, {MANIFEST_FILE: json.dumps(manifest).encode()})
    problems = verify_bundle(bundle).problems
    assert problems == [
        f"record 4: hash differs from the head hash in {MANIFEST_FILE} (rewritten?)"
    ]


def test_a_manifest_hash_edited_to_hide_a_change_is_caught(bundle: Path) -> None:
    """Changing the runbook and its manifest hash together still fails another check."""
    runbook = read(bundle, "runbook.md") + b"\n- [ ] an extra step\n"
    manifest = json.loads(read(bundle, MANIFEST_FILE))
    for entry in manifest["files"]:
        if entry["path"] == "runbook.md":
            entry["sha256"] = "00" * 32
    rewrite(bundle, {"runbook.md": runbook, MANIFEST_FILE: json.dumps(manifest).encode()})
    problems = verify_bundle(bundle).problems
    assert problems[0] == f"runbook.md: content differs from {MANIFEST_FILE} (changed?)"
    assert "runbook.md is not the document the records name" in problems[1]


def test_a_runbook_edited_with_its_manifest_rehashed_is_caught(bundle: Path) -> None:
    """A consistent manifest cannot vouch for a document the ledger's records do not name."""
    runbook = read(bundle, "runbook.md") + b"\n- [ ] an extra step\n"
    manifest = json.loads(read(bundle, MANIFEST_FILE))
    for entry in manifest["files"]:
        if entry["path"] == "runbook.md":
            entry["sha256"] = hashlib.sha256(runbook).hexdigest()
            entry["size"] = len(runbook)
    rewrite(bundle, {"runbook.md": runbook, MANIFEST_FILE: json.dumps(manifest).encode()})
    problems = verify_bundle(bundle).problems
    assert any("runbook.md is not the document the records name" in p for p in problems)


def test_a_truncated_ledger_with_its_head_rewritten_is_caught(bundle: Path) -> None:
    """Cutting the last record and rewriting head.json still differs from the manifest's head."""
    lines = read(bundle, "ledger.jsonl").splitlines(keepends=True)[:-1]
    last = json.loads(lines[-1])
    head = {"count": len(lines), "hash": last["hash"], "size": len(b"".join(lines))}
    manifest = json.loads(read(bundle, MANIFEST_FILE))
    for entry in manifest["files"]:
        if entry["path"] in ("ledger.jsonl", "head.json"):
            data = b"".join(lines) if entry["path"] == "ledger.jsonl" else json.dumps(head).encode()
            entry["sha256"], entry["size"] = hashlib.sha256(data).hexdigest(), len(data)
    rewrite(
        bundle,
        {
            "ledger.jsonl": b"".join(lines),
            "head.json": json.dumps(head).encode(),
            MANIFEST_FILE: json.dumps(manifest).encode(),
        },
    )
    problems = verify_bundle(bundle).problems
    assert f"{MANIFEST_FILE}: records 4 records but ledger.jsonl holds 3" in problems
    assert any(p.startswith("seal.json:") for p in problems)


def test_a_missing_manifest_is_reported(bundle: Path) -> None:
    """A zip without a manifest is not an evidence bundle."""
    rewrite(bundle, {MANIFEST_FILE: None})
    assert verify_bundle(bundle).problems == [f"{MANIFEST_FILE}: missing (not an evidence bundle?)"]


def test_an_unsafe_member_path_is_reported(bundle: Path) -> None:
    """A member named with `..` is refused before anything is read."""
    rewrite(bundle, {"../escape": b"x"})
    assert verify_bundle(bundle).problems == ["../escape: unsafe path in the bundle"]


def test_a_file_that_is_not_a_zip_is_reported(tmp_path: Path) -> None:
    """verify_bundle on something else says it cannot read it."""
    path = tmp_path / "bundle.zip"
    path.write_bytes(b"not a zip")
    check = verify_bundle(path)
    assert not check.ok and "not a readable zip" in check.problems[0]
