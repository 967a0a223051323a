"""The postmortem draft: every section from the evidence, the right figures, hostile text inert."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it_pyrs import MarkdownIt

from flows.contract.ports import GateAnswer
from flows.drills.drill import run_drill
from flows.drills.people import add_drill_note
from flows.engine.runner import start_run
from flows.engine.settings import Settings
from flows.evidence.incident import Incident, Trigger, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.postmortem import postmortem_markdown, read_postmortem
from flows.evidence.records import LEDGER_FILE, Event, Record, RunbookRef
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import named_identity
from flows.runbook.model import Gate
from flows.runbook.parse import parse_runbook
from flows.times import parse_utc, utc_now, utc_stamp
from tests.support import FIXTURES, PROJECT

GATED = FIXTURES / "runbooks" / "gated.md"
DRILLS = PROJECT / "runbooks" / "drills"
SECTIONS = [
    "Summary",
    "Who did what",
    "Timeline",
    "Gates and approvals",
    "Failures",
    "Lessons",
    "Verification",
]
HOSTILE = (
    "fine](javascript:alert(1)) [click here](https://evil.example/x) <b>bold</b> *wow*\n"
    "# Owned | extra cell"
)


def section(draft: str, title: str) -> str:
    """The text of one `## title` section of a draft, up to the next one."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", draft, re.M | re.S)
    assert found, f"no section {title!r}"
    return found.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The cells of each row of the first Markdown table in `text`, as written (escapes kept)."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    cells = [re.split(r"(?<!\\)\|", line.strip()[1:-1]) for line in rows]
    return [[cell.strip() for cell in row] for row in cells[2:]]


def facts(draft: str) -> dict[str, str]:
    """The summary table as fact -> value."""
    return {row[0]: row[1] for row in table_rows(section(draft, "Summary"))}


def when(record: Record) -> str:
    """A record's time as the draft writes it."""
    return utc_stamp(record.at, "seconds").replace("T", " ").removesuffix("Z") + " UTC"


class Html(HTMLParser):
    """The tags of rendered HTML and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text += data


def rendered(draft: str) -> Html:
    """The draft as a CommonMark renderer with tables and raw HTML shows it."""
    page = Html()
    page.feed(MarkdownIt("commonmark").enable("table").render(draft))
    return page


def text(markdown: str) -> str:
    """What a reader sees of one line of Markdown: its rendered text, list marker dropped."""
    return rendered(markdown).text.strip()


# -- through real runs ------------------------------------------------------------------------


class Alice:
    """Acknowledges every gate as alice, with a hostile note."""

    def ask(self, gate: Gate, incident: str) -> GateAnswer:
        return GateAnswer(by="alice", note=HOSTILE, via="cli")


@pytest.fixture
def closed(home: Path, prefect_api: str) -> Path:
    """A gated incident bob started, run to its end: alice acknowledged the gate."""
    settings = Settings(home=home, prefect="external")
    outcome = start_run(
        settings,
        GATED,
        {"service": "api"},
        incident_id="pm-1",
        started_by="cli:bob",
        responder=Alice(),
    )
    assert outcome.status == "succeeded"
    return outcome.evidence


def test_a_closed_incident_has_every_section_with_its_figures(closed: Path) -> None:
    """A run that reached its end gives a draft with every section in order, the census's
    times, the commander, the gate's answer, no failures and the ledger head it came from."""
    draft = postmortem_markdown(closed)
    records = read_records(closed)
    headings = re.findall(r"^## (.+)$", draft, re.M)
    assert headings == SECTIONS
    assert draft.startswith("# Postmortem: Gated test incident (`pm-1`)\n")
    summary = facts(draft)
    finished = [r for r in records if r.event is Event.RUN_FINISHED]
    ack = next(r for r in records if r.event is Event.GATE_ACKNOWLEDGED)
    first = next(r for r in records if r.event in (Event.STEP_SUCCEEDED, Event.GATE_ACKNOWLEDGED))
    assert summary["Status"] == "succeeded"
    assert summary["Drill or real"] == "real incident"
    assert summary["Closed"] == when(finished[-1])
    assert summary["First response"] == when(first)
    assert summary["Contained"] == when(ack)  # the gate is "Contain"
    assert summary["Commander"] == "bob"
    assert (summary["Kind"], summary["Severity"]) == ("outage", "sev2")
    for figure in ("Time to respond", "Time to contain", "Time to recover"):
        assert re.fullmatch(r"\d+(\.\d\d)? s|\d+ min \d+ s", summary[figure]), summary[figure]
    gates = section(draft, "Gates and approvals")
    assert "1 of 1 gate(s) acknowledged." in gates
    [gate] = table_rows(gates)
    via = ack.data.get("channel", ack.data.get("via"))  # the channel, in records that name it
    assert gate[:6] == ["`contain`", "Contain", "acknowledged", "alice", when(ack), via]
    assert gate[6] in ("1", "1 of 1")  # "of 1" where the record counts the gate's quorum
    people = section(draft, "Who did what")
    assert "- **bob**\n  - opened the incident (cli)" in people
    assert "- **alice**\n  - acknowledged gate Contain (`contain`)" in people
    assert "- **engine** ran 3 step(s): 3 succeeded" in people
    timeline = table_rows(section(draft, "Timeline"))
    assert [row[1] for row in timeline] == [
        str(r.seq) for r in records if r.event is not Event.STEP_STARTED
    ]
    assert "No step failed" in section(draft, "Failures")
    check = verify_ledger(closed)
    assert f"passes with {check.count} records, chain intact, head `{check.head_hash}`" in draft


def test_a_hostile_note_is_shown_as_text_never_as_markup(closed: Path) -> None:
    """A note holding a link, raw HTML, emphasis, a heading on its own line and a table pipe
    renders as its literal text: no link, no tag, no second heading, no extra cell."""
    draft = postmortem_markdown(closed)
    page = rendered(draft)
    assert "a" not in page.tags and "b" not in page.tags and "em" not in page.tags
    assert page.tags.count("h1") == 1 and "Owned" not in re.findall(r"^#+ .*", draft, re.M)[0]
    literal = " ".join(HOSTILE.split())
    assert literal in page.text
    [gate] = table_rows(section(draft, "Gates and approvals"))
    assert len(gate) == 8


def test_a_drill_postmortem_says_it_is_a_drill(home: Path, prefect_api: str) -> None:
    """A drill's draft is marked a rehearsal at its top and in its summary, with the drill's
    score, its facilitator's lesson and the gates its participants answered."""
    settings = Settings(home=home, prefect="external")
    result = run_drill(settings, DRILLS / "service-outage.yaml", speed=3000.0)
    incident = result.outcome.incident
    sam = named_identity("sam")  # the scenario's facilitator
    add_drill_note(settings, incident, sam, "Page the payments team earlier", lesson=True)
    draft = postmortem_markdown(settings.incidents_dir / incident)
    assert "> **Drill**: this incident was a rehearsal (a drill), not a real one." in draft
    summary = facts(draft)
    assert summary["Drill or real"] == "drill (a rehearsal)"
    score = result.score
    assert summary["Drill score"].startswith(
        f"{score.on_time} on time, {score.late} late, {score.missed} missed, {score.failed} failed"
    )
    lessons = section(draft, "Lessons")
    assert "- Page the payments team earlier (sam, " in lessons
    gates = {row[0]: row for row in table_rows(section(draft, "Gates and approvals"))}
    assert gates["`mitigate`"][2:4] == ["acknowledged", "tom"]
    assert summary["Contained"] != "not recorded"


# -- through ledgers the real Ledger writes ---------------------------------------------------

STEPS = (
    "# Steps\n```step\nid: change\nuses: shell.run\non_failure: undo\nwith:\n  argv: ['true']\n"
    "```\n```step\nid: snap\nuses: shell.run\non_failure: continue\nwith:\n  argv: ['true']\n```\n"
    "## Review {#review}\n- [ ] Lessons written\n"
    "```step\nid: undo\nuses: evidence.note\nwith:\n  text: undo\n```\n"
)


@contextmanager
def incident_of(root: Path, tmp_path: Path, opened_s_ago: float) -> Iterator[Ledger]:
    """An incident opened `opened_s_ago` seconds ago, its ledger open for records."""
    document = tmp_path / "steps.md"
    document.write_text(
        "---\nid: steps\ntitle: Steps test\nkind: other\nseverity: sev3\nversion: 1\n"
        'owner: "#t"\n---\n' + STEPS
    )
    runbook = parse_runbook(document)
    incident = Incident(
        id="INC-1",
        runbook=runbook_info(runbook, document),
        inputs={},
        started_at=utc_stamp(utc_now() - timedelta(seconds=opened_s_ago)),
        trigger=Trigger.ALERT,
        started_by="alert:alertmanager",
    )
    folder = open_incident(root, incident, document.read_text())
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, incident.id, ref) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {}, "drill": False})
        yield ledger


def test_failures_retries_rollbacks_and_lost_artifacts_are_listed(tmp_path: Path) -> None:
    """Each failed attempt, failed step and artifact not collected is listed with its error and
    record, and each step touched says how it ended (rolled back, or failed and went on)."""
    with incident_of(tmp_path / "incidents", tmp_path, 30) as ledger:
        ledger.record(Event.STEP_STARTED, step="change", data={"uses": "shell.run"})
        ledger.record(Event.STEP_RETRIED, step="change", data={"attempt": 2, "error": "exit 7"})
        failure = {"error": "migration refused", "attempts": 2, "on_failure": "undo"}
        ledger.record(Event.STEP_FAILED, step="change", data=failure)
        ledger.record(Event.STEP_STARTED, step="undo", data={"uses": "evidence.note"})
        ledger.record(Event.NOTE, step="undo", data={"text": "rolled back the schema"})
        ledger.record(Event.STEP_SUCCEEDED, step="undo", data={"outputs": {}, "attempts": 1})
        ledger.record(Event.STEP_STARTED, step="snap", data={"uses": "shell.run"})
        lost = {"collector": "processes", "error": "ps: not found"}
        ledger.record(Event.ARTIFACT_FAILED, step="snap", data=lost)
        stopped = {"error": "no ps", "attempts": 1, "on_failure": "continue"}
        ledger.record(Event.STEP_FAILED, step="snap", data=stopped)
        ledger.record(Event.RUN_FINISHED, data={"status": "failed", "waiting": []})
    draft = postmortem_markdown(ledger.folder)
    failures = section(draft, "Failures")
    lines = [text(line) for line in failures.splitlines() if line.startswith("- ")]
    assert lines[0].endswith("change attempt 1 failed; attempt 2 started: exit 7 (record 3)")
    assert lines[1].endswith("change failed; rolled back by undo: migration refused (record 4)")
    assert lines[2].endswith("snap artifact not collected (processes): ps: not found (record 9)")
    assert lines[3].endswith(
        "snap failed; the run went on (on_failure: continue): no ps (record 10)"
    )
    assert lines[4:] == ["change: failed, rolled back by undo", "snap: failed"]
    summary = facts(draft)
    assert summary["Closed"] == "not closed (the run is failed)"
    assert summary["Time to recover"] == "not reached"
    assert summary["Commander"] == "none recorded"  # an alert opened it, nobody acknowledged
    notes = section(draft, "Lessons")
    assert "None recorded yet" in notes
    assert "- rolled back the schema (`undo`, " in notes
    gates = table_rows(section(draft, "Gates and approvals"))
    assert gates == [["`review`", "Review", "not reached", "", "", "", "", ""]]
    assert "0 of 1 gate(s) acknowledged." in draft


def test_times_are_the_census_figures_in_minutes(tmp_path: Path) -> None:
    """Time to respond, contain and recover are counted from incident.json's opening to the
    first response, the first containment and the closing run.finished."""
    with incident_of(tmp_path / "incidents", tmp_path, 125) as ledger:
        ledger.record(Event.STEP_STARTED, step="change", data={"uses": "shell.run"})
        first = ledger.record(
            Event.STEP_SUCCEEDED, step="change", data={"outputs": {}, "attempts": 1}
        )
        ledger.record(Event.GATE_ACKNOWLEDGED, step="review", actor="carol", data={"note": "ok"})
        closing = ledger.record(Event.RUN_FINISHED, data={"status": "succeeded", "waiting": []})
    found = read_postmortem(ledger.folder)
    opened = parse_utc(found.incident.started_at)

    def minutes(record: Record) -> str:
        seconds = int((record.at - opened).total_seconds())
        return f"{seconds // 60} min {seconds % 60} s"

    summary = facts(found.markdown())
    assert summary["Time to respond"] == minutes(first)
    assert summary["Time to recover"] == minutes(closing)
    assert summary["Time to contain"] == "not reached"  # nothing said contain
    assert summary["Commander"] == "carol"  # the first person to answer a gate


QUORUM = "gate.approved" in {str(event) for event in Event}


@pytest.mark.skipif(not QUORUM, reason="this ledger format has no gate.approved records")
def test_approvals_toward_a_quorum_and_refused_answers_are_shown(tmp_path: Path) -> None:
    """A gate passed by two approvals shows `2 of 2`; each approval is a deed of its person,
    and a refused answer is listed with its reason, counted apart from the approvals."""
    with incident_of(tmp_path / "incidents", tmp_path, 60) as ledger:
        ledger.record(Event.GATE_WAITING, step="review", data={"title": "Review"})
        refused = {"note": "", "via": "cli", "reason": "mallory is not an approver of review"}
        ledger.record(Event("gate.refused"), step="review", actor="mallory", data=refused)
        first = {"note": "looks right", "via": "cli", "approvals": 1, "needed": 2}
        ledger.record(Event("gate.approved"), step="review", actor="carol", data=first)
        second = {"note": "agreed", "via": "slack", "approvals": 2, "needed": 2}
        ledger.record(Event.GATE_ACKNOWLEDGED, step="review", actor="dave", data=second)
    draft = postmortem_markdown(ledger.folder)
    gates = section(draft, "Gates and approvals")
    [row] = table_rows(gates)
    assert [row[2], row[3], row[5], row[6]] == ["acknowledged", "dave", "slack", "2 of 2"]
    assert "Answers refused (1):" in gates
    assert text(gates.strip().splitlines()[-1]).endswith(
        "mallory at review: mallory is not an approver of review"
    )
    people = [text(line) for line in section(draft, "Who did what").splitlines() if line]
    assert any(
        line.startswith("approved gate Review (review) at ")
        and line.endswith("(1 of 2): looks right")
        for line in people
    )
    assert any(line.startswith("was refused at gate Review (review) at ") for line in people)
    timeline = {row[1]: row for row in table_rows(section(draft, "Timeline"))}
    assert text(timeline["4"][3]) == "approved by carol (1 of 2)"
    assert text(timeline["3"][3]) == "refused mallory"


def test_a_rejected_gate_is_shown_with_who_rejected_it_and_why(tmp_path: Path) -> None:
    """A rejection is the gate's outcome in the gates table and a deed of the one who rejected."""
    with incident_of(tmp_path / "incidents", tmp_path, 60) as ledger:
        ledger.record(Event.GATE_WAITING, step="review", data={"title": "Review"})
        rejected = {"reason": "rollback not tested", "via": "slack", "channel": "slack"}
        ledger.record(Event.GATE_REJECTED, step="review", actor="bea", data=rejected)
    draft = postmortem_markdown(ledger.folder)
    [row] = table_rows(section(draft, "Gates and approvals"))
    assert [row[2], row[3], text(row[7])] == ["rejected", "bea", "rollback not tested"]
    people = [text(line) for line in section(draft, "Who did what").splitlines() if line]
    assert any(
        line.startswith("rejected gate Review (review) at ")
        and line.endswith(": rollback not tested")
        for line in people
    ), people


def test_a_ledger_that_does_not_verify_is_named_in_the_draft(tmp_path: Path) -> None:
    """A draft of an edited ledger says, in its verification section, that it does not verify
    and which record is at fault."""
    with incident_of(tmp_path / "incidents", tmp_path, 5) as ledger:
        ledger.record(Event.NOTE, step="undo", data={"text": "first"})
    path = ledger.folder / LEDGER_FILE
    path.write_bytes(path.read_bytes().replace(b'"first"', b'"forged"'))
    verification = section(postmortem_markdown(ledger.folder), "Verification")
    assert verification.startswith("\n**The ledger does not verify**: record 2\\: hash")
