"""The report's timeline tells the whole story: failed attempts, retries, rollbacks, skips."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest

from flows.engine.runner import start_run
from flows.engine.settings import Settings
from flows.evidence.incident import Incident, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, RunbookRef
from flows.evidence.report import render_report
from flows.runbook.parse import parse_runbook

HOSTILE = "<script>alert('x')</script>"


def write(tmp_path: Path, name: str, body: str) -> Path:
    """A small runbook with standard front matter and `body`."""
    path = tmp_path / f"{name}.md"
    head = (
        f"---\nid: {name}\ntitle: {name} test\nkind: other\nseverity: sev3\nversion: 1\n"
        'owner: "#t"\n---\n'
    )
    path.write_text(head + body)
    return path


class Table(HTMLParser):
    """The text of each cell of each row of one table (by class), tags dropped, text unescaped."""

    def __init__(self, css_class: str) -> None:
        super().__init__()
        self.css_class, self.inside = css_class, False
        self.rows: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and (dict(attrs).get("class") or "").split() == [self.css_class]:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th") and self.rows:
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def table(report: str, css_class: str) -> list[list[str]]:
    """The rows of the report's table of that class, as cell texts."""
    parser = Table(css_class)
    parser.feed(report)
    return [row for row in parser.rows if row]


def events(report: str, item: str) -> list[list[str]]:
    """The timeline's record-by-record rows about one item: #, time, item, attempt, what, detail."""
    return [row for row in table(report, "events") if row[2] == item]


def outcome(report: str, item: str) -> str:
    """The outcome the steps table shows for one item."""
    pattern = rf'<code>{re.escape(item)}</code><br>.*?<span class="badge [a-z]+">(.*?)</span>'
    found = re.search(pattern, report[report.index('id="steps"') :])
    assert found, f"no row for {item}"
    return found.group(1)


# -- through real runs ------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_api")
def test_a_step_that_failed_then_succeeded_shows_both_attempts(home: Path, tmp_path: Path) -> None:
    """A first attempt that failed appears with its time, number and escaped error, then the
    attempt that succeeded; the step reads `succeeded on attempt 2`."""
    counter, script = tmp_path / "count", tmp_path / "flaky.sh"
    script.write_text(
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}\n"
        f'[ $n -ge 2 ] || {{ echo "{HOSTILE} on attempt $n" >&2; exit 3; }}\n'
    )
    path = write(
        tmp_path,
        "flaky",
        "# Flaky\n```step\nid: flaky\nuses: shell.run\nretries: 1\nwith:\n"
        f"  argv: [sh, '{script}']\n```\n",
    )
    start_run(Settings(home=home, prefect="external"), path, {}, incident_id="inc-flaky")
    report = render_report(home / "incidents" / "inc-flaky")
    rows = events(report, "flaky")
    assert [(row[3], row[4]) for row in rows] == [
        ("1", "started"),
        ("2", "attempt 1 failed; attempt 2 started"),
        ("2", "succeeded"),
    ]
    assert "sh exited with code 3" in rows[1][5] and f"{HOSTILE} on attempt 1" in rows[1][5]
    assert re.fullmatch(r"\d\d:\d\d:\d\d", rows[1][1])
    assert outcome(report, "flaky") == "succeeded on attempt 2"
    assert "<script" not in report


@pytest.mark.usefixtures("prefect_api")
def test_a_rolled_back_step_shows_the_rollback_and_is_not_succeeded(
    home: Path, tmp_path: Path
) -> None:
    """A failed step whose on_failure rollback ran reads `failed, rolled back by undo`; the
    timeline shows its error, the rollback starting as such, and how the rollback ended."""
    path = write(
        tmp_path,
        "rollback",
        "# Rollback\n```step\nid: change\nuses: shell.run\non_failure: undo\n"
        "with:\n  argv: [sh, -c, 'echo migration refused >&2; exit 1']\n```\n"
        "```step\nid: next\nuses: evidence.note\nwith:\n  text: not reached\n```\n"
        "```step\nid: undo\nuses: evidence.note\nwith:\n  text: rolled back\n```\n",
    )
    start_run(Settings(home=home, prefect="external"), path, {}, incident_id="inc-undo")
    report = render_report(home / "incidents" / "inc-undo")
    assert outcome(report, "change") == "failed, rolled back by undo"
    assert outcome(report, "undo") == "succeeded (rollback of change)"
    failed = events(report, "change")[-1]
    assert failed[4] == "failed; rolled back by undo"
    assert "migration refused" in failed[5]
    undo = [row[4] for row in events(report, "undo")]
    assert undo == ["started as the rollback of change", "note", "succeeded"]
    assert '<line class="failure"' in report


@pytest.mark.usefixtures("prefect_api")
def test_a_timed_out_attempt_is_on_the_timeline(home: Path, tmp_path: Path) -> None:
    """An attempt the orchestrator ended past timeout_s shows as failed by its timeout before
    the retry, and the last attempt's timeout fails the step."""
    path = write(
        tmp_path,
        "slow",
        "# Slow\n```step\nid: slow\nuses: shell.run\ntimeout_s: 1\nretries: 1\n"
        "with:\n  argv: [sleep, '2']\n```\n",
    )
    start_run(Settings(home=home, prefect="external"), path, {}, incident_id="inc-slow")
    report = render_report(home / "incidents" / "inc-slow")
    rows = events(report, "slow")
    assert rows[1][3:] == ["2", "attempt 1 failed; attempt 2 started", "timed out after 1 s"]
    assert rows[2][3] == "2" and rows[2][4] == "failed; the run stopped (on_failure: stop)"
    assert "timed out" in rows[2][5]


# -- through ledgers the real Ledger writes ---------------------------------------------------


@contextmanager
def incident_of(root: Path, document: Path, incident_id: str = "INC-1") -> Iterator[Ledger]:
    """An incident folder of `document` at `root`, with its ledger open for records."""
    runbook = parse_runbook(document)
    incident = Incident(
        id=incident_id,
        runbook=runbook_info(runbook, document),
        inputs={},
        started_at="2026-01-01T00:00:00+00:00",
    )
    folder = open_incident(root, incident, document.read_text())
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, incident_id, ref) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}, "drill": False})
        yield ledger


STEPS = (
    "# Steps\n```step\nid: change\nuses: shell.run\non_failure: undo\nwith:\n  argv: ['true']\n"
    "```\n```step\nid: probe\nuses: shell.run\nif: \"{{ false }}\"\nwith:\n  argv: ['true']\n"
    "```\n```step\nid: snap\nuses: shell.run\non_failure: continue\nwith:\n  argv: ['true']\n```\n"
    "```step\nid: undo\nuses: evidence.note\nwith:\n  text: undo\n```\n"
)


def test_a_failed_rollback_is_said_so(tmp_path: Path) -> None:
    """When the rollback step itself fails, the rolled-back step says its rollback failed."""
    document = write(tmp_path, "steps", STEPS)
    with incident_of(tmp_path / "incidents", document) as ledger:
        ledger.record(Event.STEP_STARTED, step="change", data={"uses": "shell.run"})
        failure = {"error": "exit 1", "attempts": 1, "on_failure": "undo"}
        ledger.record(Event.STEP_FAILED, step="change", data=failure)
        ledger.record(Event.STEP_STARTED, step="undo", data={"uses": "evidence.note"})
        stop = {"error": "disk full", "attempts": 1, "on_failure": "stop"}
        ledger.record(Event.STEP_FAILED, step="undo", data=stop)
    report = render_report(ledger.folder)
    assert outcome(report, "change") == "failed, rolled back by undo (the rollback failed)"
    assert events(report, "change")[-1][4] == "failed; rolled back by undo (the rollback failed)"


def test_a_step_run_again_after_its_rollback_never_reads_plain_succeeded(tmp_path: Path) -> None:
    """A step that failed, was rolled back, and succeeded on a resumed run keeps the rollback in
    its outcome, and both runs' records stay on the timeline."""
    document = write(tmp_path, "steps", STEPS)
    with incident_of(tmp_path / "incidents", document) as ledger:
        ledger.record(Event.STEP_STARTED, step="change", data={"uses": "shell.run"})
        failure = {"error": "exit 1", "attempts": 1, "on_failure": "undo"}
        ledger.record(Event.STEP_FAILED, step="change", data=failure)
        ledger.record(Event.STEP_STARTED, step="undo", data={"uses": "evidence.note"})
        ledger.record(Event.STEP_SUCCEEDED, step="undo", data={"outputs": {}, "attempts": 1})
        ledger.record(Event.RUN_FINISHED, data={"status": "failed", "waiting": []})
        ledger.record(Event.RUN_RESUMED, data={"inputs": {}})
        ledger.record(Event.STEP_STARTED, step="change", data={"uses": "shell.run"})
        ledger.record(Event.STEP_SUCCEEDED, step="change", data={"outputs": {}, "attempts": 1})
    report = render_report(ledger.folder)
    assert outcome(report, "change") == "succeeded (after a failure rolled back by undo)"
    assert [row[4] for row in events(report, "change")] == [
        "started",
        "failed; rolled back by undo",
        "started",
        "succeeded",
    ]


def test_skips_failures_that_let_the_run_go_on_and_lost_artifacts_are_shown(
    tmp_path: Path,
) -> None:
    """A skipped step's reason, a `continue` failure and an artifact not collected appear on the
    timeline with what they say, escaped."""
    document = write(tmp_path, "steps", STEPS)
    with incident_of(tmp_path / "incidents", document) as ledger:
        ledger.record(Event.STEP_SKIPPED, step="probe", data={"reason": "if: {{ false }}"})
        ledger.record(Event.STEP_STARTED, step="snap", data={"uses": "shell.run"})
        lost = {"collector": "processes", "error": f"ps: {HOSTILE}"}
        ledger.record(Event.ARTIFACT_FAILED, step="snap", data=lost)
        failure = {"error": "no ps", "attempts": 1, "on_failure": "continue"}
        ledger.record(Event.STEP_FAILED, step="snap", data=failure)
    report = render_report(ledger.folder)
    assert events(report, "probe")[0][4:] == ["skipped", "if: {{ false }}"]
    assert events(report, "snap")[1][4:] == ["artifact not collected (processes)", f"ps: {HOSTILE}"]
    assert events(report, "snap")[2][4] == "failed; the run went on (on_failure: continue)"
    assert "<script" not in report


def test_refused_and_partial_approvals_are_on_the_timeline(tmp_path: Path) -> None:
    """A refusal reads as one, with its reason; an approval short of its quorum says so."""
    document = write(tmp_path, "gated", "## Contain\n\n- [ ] Host isolated\n")
    with incident_of(tmp_path / "incidents", document) as ledger:
        ledger.record(Event.GATE_WAITING, step="contain", data={"title": "Contain"})
        refused = {"via": "slack", "reason": "bob holds no role that may pass this gate"}
        ledger.record(Event.GATE_REFUSED, step="contain", actor="slack:U0BOB", data=refused)
        approved = {"note": "", "approvals": 1, "needed": 2, "authority": "role:security"}
        ledger.record(Event.GATE_APPROVED, step="contain", actor="alice", data=approved)
    rows = events(render_report(ledger.folder), "contain")
    assert rows[1][4] == "refused to slack:U0BOB (via slack)"
    assert rows[1][5] == "bob holds no role that may pass this gate"
    assert rows[2][4] == "approved by alice (1 of 2 approvals) as role:security; waiting for more"


def test_a_gate_its_timeout_decided_ends_there_and_says_how(tmp_path: Path) -> None:
    """Escalation leaves the gate waiting; a timeout that continues it ends it, with a time."""
    document = write(tmp_path, "gated", "## Contain\n\n- [ ] Host isolated\n")
    with incident_of(tmp_path / "incidents", document) as ledger:
        ledger.record(Event.GATE_WAITING, step="contain", data={"title": "Contain"})
        escalated = {"timeout_s": 60, "outcome": "escalated", "escalate_to": "incident-commander"}
        ledger.record(Event.GATE_TIMED_OUT, step="contain", data=escalated)
        continued = {"timeout_s": 60, "outcome": "continued", "on_timeout": "continue"}
        ledger.record(Event.GATE_TIMED_OUT, step="contain", data=continued)
    report = render_report(ledger.folder)
    rows = events(report, "contain")
    assert rows[1][4] == "timed out after 60 s: escalated to incident-commander"
    assert rows[2][4] == "timed out after 60 s: continued"
    assert outcome(report, "contain") == "continued"


def test_steering_acts_and_their_refusals_are_on_the_timeline(tmp_path: Path) -> None:
    """Who retried, reassigned, re-rated or aborted the incident, and who was refused, in words."""
    document = write(tmp_path, "steps", STEPS)
    with incident_of(tmp_path / "incidents", document) as ledger:
        ledger.record(Event.STEP_FAILED, step="change", data={"error": "exit 1", "attempts": 1})
        ledger.record(Event.STEP_RETRY_REQUESTED, step="change", actor="bea", data={})
        refused = {"act": "abort", "reason": "sol (sre) may not abort INC-1"}
        ledger.record(Event.STEER_REFUSED, actor="sol", data=refused)
        assigned = {"role": "incident-commander", "assignee": "bea"}
        ledger.record(Event.INCIDENT_ASSIGNED, actor="me", data=assigned)
        ledger.record(
            Event.INCIDENT_SEVERITY, actor="bea", data={"severity": "sev1", "previous": "sev3"}
        )
        ledger.record(Event.RUN_ABORTED, actor="bea", data={"reason": "false alarm"})
    rows = table(render_report(ledger.folder), "events")
    said = [(row[4], row[5]) for row in rows]
    assert ("retry requested by bea", "") in said
    assert ("abort refused to sol", "sol (sre) may not abort INC-1") in said
    assert ("incident-commander assigned to bea by me", "") in said
    assert ("severity changed from sev3 to sev1 by bea", "") in said
    assert ("incident aborted by bea", "false alarm") in said
