"""SOC 2 criteria in the report: one table, the same as docs/evidence.md's, applied as stated."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flows.evidence.criteria import CRITERIA, criterion
from flows.evidence.incident import Incident, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, RunbookRef
from flows.evidence.report import render_report
from flows.runbook.parse import parse_runbook
from tests.support import FIXTURES, PROJECT

EVIDENCE_DOC = PROJECT / "docs" / "evidence.md"
CREDENTIAL_LEAK = PROJECT / "runbooks" / "breach" / "credential-leak.md"
_ROW = re.compile(r"^\| \*\*(?P<id>[A-Z]+\d+\.\d+)\*\*: (?P<name>[^|]+?) \| (?P<looks>[^|]+?) \|$")


def documented_criteria() -> list[tuple[str, str, str]]:
    """The rows of docs/evidence.md's SOC 2 table: id, name, what to look at."""
    text = EVIDENCE_DOC.read_text()
    section = text[text.index("How the records map to SOC 2") :]
    table = section[section.index("| Criterion |") :].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        found = _ROW.match(line)
        assert found, f"docs/evidence.md: a SOC 2 row not like | **ID**: name | ... |: {line}"
        rows.append((found["id"], found["name"], found["looks"]))
    return rows


def test_docs_table_is_the_engines_table() -> None:
    """docs/evidence.md maps each criterion to the same records, in the same words, as the
    table the report applies."""
    assert documented_criteria() == [(c.id, c.name, c.looks_at) for c in CRITERIA]


def library_documents() -> list[Path]:
    """Every runbook document of the library and the test fixtures."""
    found = sorted((PROJECT / "runbooks").glob("*/*.md")) + sorted(FIXTURES.rglob("*.md"))
    return [path for path in found if path.read_text().startswith("---\n")]


@pytest.mark.parametrize("document", library_documents(), ids=lambda path: path.name)
def test_every_criterion_a_runbook_names_has_a_rule(document: Path) -> None:
    """Each SOC 2 criterion named in a library or fixture runbook's soc2: has a row in the table."""
    named = parse_runbook(document).meta.soc2
    assert [c for c in named if criterion(c) is None] == []


def test_cc9_1_has_a_rule() -> None:
    """CC9.1, risk mitigation for business disruptions, is in the table."""
    rule = criterion("CC9.1")
    assert rule is not None and "rollback" in rule.looks_at


@contextmanager
def incident_of(root: Path, document: Path) -> Iterator[Ledger]:
    """An incident folder of `document` at `root`, with its ledger open for records."""
    runbook = parse_runbook(document)
    incident = Incident(
        id="INC-1",
        runbook=runbook_info(runbook, document),
        inputs={},
        alert={"source": "alertmanager", "labels": {"alertname": "KeyLeak"}},
        started_at="2026-01-01T00:00:00+00:00",
    )
    folder = open_incident(root, incident, document.read_text())
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, "INC-1", ref) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}, "drill": False})
        yield ledger


def criterion_cell(report: str, criterion_id: str) -> str:
    """The HTML of the report's row for one criterion."""
    found = re.search(rf"<tr><th>{re.escape(criterion_id)}<br>.*?</tr>", report, re.S)
    assert found, f"the report has no row for {criterion_id}"
    return found.group(0)


def acknowledge(ledger: Ledger, gate: str, by: str) -> None:
    ledger.record(Event.GATE_WAITING, step=gate, data={"title": gate})
    ledger.record(Event.GATE_ACKNOWLEDGED, step=gate, actor=by, data={"note": "", "via": "cli"})


def test_each_gate_is_filed_under_the_criterion_the_docs_give_it(tmp_path: Path) -> None:
    """The triage gate evidences CC7.3, the containment gate CC7.4, the recovery and review
    gates CC7.5, each under that criterion only."""
    with incident_of(tmp_path / "incidents", CREDENTIAL_LEAK) as ledger:
        for gate, by in (("triage", "tara"), ("contain", "carl"), ("recover", "rita")):
            acknowledge(ledger, gate, by)
        acknowledge(ledger, "review", "rob")
    report = render_report(ledger.folder)
    cc73, cc74, cc75 = (criterion_cell(report, c) for c in ("CC7.3", "CC7.4", "CC7.5"))
    assert "<code>triage</code> gate: acknowledged by tara" in cc73
    assert "<code>contain</code> gate: acknowledged by carl" in cc74
    assert "<code>recover</code> gate: acknowledged by rita" in cc75
    assert "<code>review</code> gate: acknowledged by rob" in cc75
    assert "<code>triage</code>" not in cc74 + cc75
    assert "<code>contain</code>" not in cc73 + cc75
    assert "<code>recover</code>" not in cc73 + cc74


def test_detection_notes_and_the_alert_evidence_cc7_3(tmp_path: Path) -> None:
    """The alert, run.started and a note written before any gate was acknowledged are under
    CC7.3; a note written after is not."""
    with incident_of(tmp_path / "incidents", CREDENTIAL_LEAK) as ledger:
        ledger.record(Event.NOTE, step="detection_note", data={"text": "found in a paste"})
        acknowledge(ledger, "triage", "tara")
        ledger.record(Event.NOTE, step="closing_comment", data={"text": "later"})
    found = criterion_cell(render_report(ledger.folder), "CC7.3").split("<ul>", 1)[1]
    assert "alert that opened the incident, from alertmanager" in found
    assert "<code>run.started</code>" in found
    assert found.count("<code>note</code>") == 1 and "of detection_note" in found


def test_a_criterion_without_a_rule_is_shown_not_dropped(tmp_path: Path) -> None:
    """A criterion the runbook names but the engine has no rule for reads `named by the runbook,
    no rule`; CC9.1 named by a runbook lists the failed attempts, failures and rollbacks."""
    document = tmp_path / "risky.md"
    document.write_text(
        "---\nid: risky\ntitle: Risky\nkind: other\nseverity: sev3\nversion: 1\n"
        'owner: "#t"\nsoc2: [CC9.1, CC6.1]\n---\n# Risky\n'
        "```step\nid: change\nuses: shell.run\nretries: 1\non_failure: undo\n"
        "with:\n  argv: ['false']\n```\n"
        "```step\nid: undo\nuses: evidence.note\nwith:\n  text: undone\n```\n"
    )
    with incident_of(tmp_path / "incidents", document) as ledger:
        ledger.record(Event.STEP_STARTED, step="change", data={"uses": "shell.run"})
        ledger.record(Event.STEP_RETRIED, step="change", data={"attempt": 2, "error": "busy"})
        failure = {"error": "still busy", "attempts": 2, "on_failure": "undo"}
        ledger.record(Event.STEP_FAILED, step="change", data=failure)
        ledger.record(Event.STEP_STARTED, step="undo", data={"uses": "evidence.note"})
        ledger.record(Event.STEP_SUCCEEDED, step="undo", data={"outputs": {}, "attempts": 1})
    report = render_report(ledger.folder)
    assert "named by the runbook, no rule" in criterion_cell(report, "CC6.1")
    cc91 = criterion_cell(report, "CC9.1")
    assert "<code>change</code> attempt 1 failed; attempt 2 started at" in cc91
    assert ": busy" in cc91
    assert "failed; rolled back by undo" in cc91 and "still busy" in cc91
    assert "<code>undo</code> step (evidence.note): succeeded (rollback of change)" in cc91
