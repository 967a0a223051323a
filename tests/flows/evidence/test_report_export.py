"""The report in an exported bundle: who exported it and when, and each check's own result."""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.cli.app import main
from flows.evidence.bundle import MANIFEST_FILE, export_bundle
from flows.evidence.incident import DOCUMENT_FILE, Incident, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import HEAD_FILE, LEDGER_FILE, Event, RunbookRef
from flows.evidence.report import render_report
from flows.evidence.seal import seal_incident
from flows.evidence.verify import CHECKS, verify_ledger
from flows.runbook.parse import parse_runbook
from tests.support import FIXTURES

GATED = FIXTURES / "runbooks" / "gated.md"
INCIDENT_ID = "gated-20260101-000000-xprt"
PROCESSES = b"PID CMD\n1 init\n"


def make_incident(root: Path) -> Path:
    """An incident folder of the gated runbook with one collected artifact."""
    runbook = parse_runbook(GATED)
    incident = Incident(
        id=INCIDENT_ID,
        runbook=runbook_info(runbook, GATED),
        inputs={},
        started_at="2026-01-01T00:00:00+00:00",
    )
    folder = open_incident(root, incident, GATED.read_text())
    sha256 = hashlib.sha256(PROCESSES).hexdigest()
    path = folder / "artifacts" / sha256[:2] / sha256
    path.parent.mkdir(parents=True)
    path.write_bytes(PROCESSES)
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, INCIDENT_ID, ref) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}, "drill": False})
        custody = {"collector": "processes", "sha256": sha256, "size": len(PROCESSES)}
        ledger.record(Event.ARTIFACT_COLLECTED, step="record", data=custody)
        ledger.record(Event.RUN_FINISHED, data={"status": "succeeded", "waiting": []})
    return folder


def read(bundle: Path, name: str) -> str:
    with zipfile.ZipFile(bundle) as opened:
        return opened.read(name).decode()


def verification_rows(report: str) -> dict[str, tuple[str, str]]:
    """Each row of the report's verification table: check name -> (badge, detail)."""
    table = report[report.index('<table class="verification">') :]
    table = table[: table.index("</table>")]
    row = r'<tr><th>(.*?)</th><td><span class="badge[^"]*">(.*?)</span></td><td>(.*?)</td>'
    rows = re.findall(row, table)
    return {name: (badge, detail) for name, badge, detail in rows}


def test_manifest_and_report_say_who_exported_and_when(tmp_path: Path) -> None:
    """`exported_by` and `exported_at` are in the manifest, and the report's summary says them."""
    bundle = export_bundle(make_incident(tmp_path), tmp_path / "b.zip", exported_by="alice")
    manifest = json.loads(read(bundle, MANIFEST_FILE))
    assert manifest["exported_by"] == "alice"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["exported_at"])
    report = read(bundle, "report.html")
    assert f"<dt>Exported</dt><dd>by alice at {manifest['exported_at']}</dd>" in report


def test_export_names_the_os_user_when_no_one_is_given(tmp_path: Path) -> None:
    """Without `exported_by`, the bundle names the operating-system user who exported it."""
    bundle = export_bundle(make_incident(tmp_path), tmp_path / "b.zip")
    assert json.loads(read(bundle, MANIFEST_FILE))["exported_by"] == getpass.getuser()


def test_cli_export_takes_who_exports(home: Path, tmp_path: Path) -> None:
    """`runbook evidence export --by NAME` puts the name in the manifest."""
    make_incident(home / "incidents")
    bundle = tmp_path / "bundle.zip"
    args = ["evidence", "export", INCIDENT_ID, "--out", str(bundle), "--by", "auditor-ann"]
    assert main(args) == 0
    assert json.loads(read(bundle, MANIFEST_FILE))["exported_by"] == "auditor-ann"


def test_export_leaves_the_ledger_as_it_was(tmp_path: Path) -> None:
    """Export writes no record: the ledger and head are byte for byte what they were, so a
    sealed ledger stays sealed by its last seal."""
    folder = make_incident(tmp_path)
    seal_incident(folder)
    before = [(folder / name).read_bytes() for name in (LEDGER_FILE, HEAD_FILE)]
    export_bundle(folder, tmp_path / "b.zip", exported_by="alice")
    assert [(folder / name).read_bytes() for name in (LEDGER_FILE, HEAD_FILE)] == before
    assert verify_ledger(folder).ok


def test_report_shows_each_check_export_made_with_its_own_result(tmp_path: Path) -> None:
    """Every check verify makes, the artifacts, the seal's root and its timestamp have a row of
    their own in the bundle's report, not one line for the ledger."""
    folder = make_incident(tmp_path)
    seal_incident(folder)
    rows = verification_rows(read(export_bundle(folder, tmp_path / "b.zip"), "report.html"))
    assert list(rows) == [name for name, _ in CHECKS] + ["seal root", "timestamp"]
    assert {name: badge for name, (badge, _) in rows.items() if name != "timestamp"} == {
        name: "verified" for name in rows if name != "timestamp"
    }
    assert rows["artifacts"][1] == "1 artifact(s) present and hashing to their custody records"
    assert rows["timestamp"] == (
        "not checked",
        "the seal has no timestamp (seal with --tsa URL)",
    )


def test_verify_names_the_check_that_failed_and_the_ones_not_made(tmp_path: Path) -> None:
    """With runbook.md edited, the checks before it pass, it fails with its problem, and the
    checks after it are shown as not made."""
    folder = make_incident(tmp_path)
    (folder / DOCUMENT_FILE).write_text(GATED.read_text() + "\nedited\n")
    verification = verify_ledger(folder)
    results = {check.name: check.ok for check in verification.checks}
    assert results == {
        "chain": True,
        "canonical bytes": True,
        "head": True,
        "incident": True,
        "runbook.md": False,
        "scenario.yaml": None,
        "incident.json": None,
        "artifacts": None,
        "seal": None,
    }
    summary = {c.name: {"ok": c.ok, "detail": c.detail} for c in verification.checks}
    rows = verification_rows(render_report(folder, summary))
    assert rows["runbook.md"][0] == "FAILED"
    assert "runbook.md is not the document the records name" in rows["runbook.md"][1]
    assert rows["incident.json"][0] == "not checked"


@pytest.mark.parametrize(
    ("edit", "failed"),
    [
        (lambda line: line.replace(b'"seq":2,', b'"seq":2 ,'), "canonical bytes"),
        (lambda line: line.replace(b"processes", b"processez"), "chain"),
    ],
    ids=["spacing", "content"],
)
def test_verify_tells_a_non_canonical_record_from_a_broken_chain(
    tmp_path: Path, edit: Callable[[bytes], bytes], failed: str
) -> None:
    """A record re-spaced with its hash intact fails the canonical-bytes check; an edited one
    fails the chain; the other of the two is not made past that record."""
    folder = make_incident(tmp_path)
    lines = (folder / LEDGER_FILE).read_bytes().splitlines(keepends=True)
    lines[1] = edit(lines[1])
    (folder / LEDGER_FILE).write_bytes(b"".join(lines))
    results = {check.name: check.ok for check in verify_ledger(folder).checks}
    other = "chain" if failed == "canonical bytes" else "canonical bytes"
    assert (results[failed], results[other], results["head"]) == (False, None, None)
