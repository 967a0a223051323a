"""The HTML evidence report: content from the ledger, escaping, and how a real browser draws it."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from flows.evidence.incident import Incident, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import LEDGER_FILE, RunbookRef
from flows.evidence.report import render_report
from flows.runbook.parse import parse_runbook
from tests.support import FIXTURES

GATED = FIXTURES / "runbooks" / "gated.md"
INCIDENT_ID = "gated-20260101-000000-abcd"
TICKET_URL = "https://jira.test/browse/OPS-7"
ARTIFACT_HASH = "cd" * 32
HOSTILE = "<script>alert('x')</script>"


def make_incident(
    root: Path,
    *,
    drill: bool = False,
    ticket_url: str = TICKET_URL,
    acknowledged: bool = True,
    note: str = HOSTILE,
    document: Path = GATED,
) -> Path:
    """An incident of the gated runbook (or a `document` like it) with a hostile alert and note;
    run to the end, or up to its gate when not `acknowledged`."""
    runbook = parse_runbook(document)
    info = runbook_info(runbook, document)
    incident = Incident(
        id=INCIDENT_ID,
        runbook=info,
        inputs={"service": "checkout"},
        alert={"source": "alertmanager", "labels": {"alertname": HOSTILE}},
        started_at="2026-01-01T00:00:00+00:00",
        drill=drill,
    )
    folder = open_incident(root, incident, document.read_text())
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, INCIDENT_ID, ref) as ledger:
        ledger.record("run.started", data={"inputs": {"service": "checkout"}, "drill": drill})
        step(ledger, "ticket", "jira.create_issue", {"key": "OPS-7", "url": ticket_url})
        step(ledger, "announce", "slack.post", {"channel": "#test-oncall", "ts": "1.2"})
        ledger.record("gate.waiting", step="contain", data={"title": "Contain"})
        ledger.record("run.finished", data={"status": "waiting", "waiting": ["contain"]})
        if not acknowledged:
            return folder
        ledger.record("gate.acknowledged", step="contain", actor="alice", data={"note": HOSTILE})
        ledger.record("run.resumed", data={"inputs": {"service": "checkout"}})
        ledger.record("note", step="record", data={"text": note})
        artifact = {"collector": "host.processes", "sha256": ARTIFACT_HASH, "size": 2048}
        ledger.record("artifact.collected", step="record", data={**artifact, "path": "ps.txt"})
        step(ledger, "record", "jira.comment", {"id": "1"})
        ledger.record("run.finished", data={"status": "succeeded", "waiting": []})
    return folder


def step(ledger: Ledger, step_id: str, uses: str, outputs: dict[str, Any]) -> None:
    """Record one step that started and succeeded with these outputs."""
    ledger.record("step.started", step=step_id, data={"uses": uses}, durable=False)
    ledger.record("step.succeeded", step=step_id, data={"outputs": outputs, "attempts": 1})


class Links(HTMLParser):
    """Collects the attributes of every link on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.attrs.append(dict(attrs))


@pytest.fixture
def report(tmp_path: Path) -> str:
    """The report of a finished incident of the gated runbook."""
    return render_report(make_incident(tmp_path))


def test_report_names_the_incident_and_the_runbook_hash(report: str) -> None:
    """The summary shows the incident id and the sha256 of the runbook as run."""
    assert INCIDENT_ID in report
    assert parse_runbook(GATED).sha256 in report


def test_report_lists_every_step_and_gate(report: str) -> None:
    """Every step and gate of the runbook appears in the report."""
    for item in parse_runbook(GATED).items:
        assert f"<code>{item.id}</code>" in report


def test_report_shows_the_runbooks_soc2_criteria(report: str) -> None:
    """The SOC 2 criteria the runbook names appear with the gate that evidences them."""
    assert "CC7.4" in report
    assert "<code>contain</code> gate: acknowledged by alice" in report


def test_report_escapes_alert_and_note_text(report: str) -> None:
    """Script tags from an alert, a gate note and a note record arrive escaped, never live."""
    assert "<script" not in report
    assert report.count("&lt;script&gt;") >= 3


def test_report_shows_template_syntax_from_the_ledger_as_written(tmp_path: Path) -> None:
    """Jinja syntax and markup in a ledger note reach the page as text, never evaluated."""
    note = "{{ 7*7 }} {% if true %}yes{% endif %} {# hidden #} <b>bold</b>"
    report = render_report(make_incident(tmp_path, note=note))
    assert (
        "<pre>{{ 7*7 }} {% if true %}yes{% endif %} {# hidden #} &lt;b&gt;bold&lt;/b&gt;</pre>"
        in report
    )
    assert "<b>bold</b>" not in report


def test_report_escapes_the_runbooks_own_text(tmp_path: Path) -> None:
    """Markup in the runbook's title and step headings is shown as text, never as markup."""
    document = tmp_path / "gated.md"
    text = GATED.read_text().replace("title: Gated test incident", 'title: "<i>Gated</i>"')
    document.write_text(text.replace("## Tell the team", "## Tell the <u>team</u>"))
    report = render_report(make_incident(tmp_path / "incidents", document=document))
    assert "<h1>&lt;i&gt;Gated&lt;/i&gt;</h1>" in report
    assert "<small>Tell the &lt;u&gt;team&lt;/u&gt;</small>" in report


def test_report_keeps_a_quote_in_a_ticket_url_inside_the_link(tmp_path: Path) -> None:
    """A quote in a ticket URL cannot close the href and add an attribute of its own."""
    url = 'https://jira.test/"onmouseover="alert(1)'
    links = Links()
    links.feed(render_report(make_incident(tmp_path, ticket_url=url)))
    assert links.attrs == [{"href": url}]


def test_report_links_the_ticket(report: str) -> None:
    """The ticket opened by jira.create_issue is linked by its URL."""
    assert f'<a href="{TICKET_URL}">OPS-7</a>' in report


def test_report_does_not_link_a_non_web_url(tmp_path: Path) -> None:
    """A ticket URL that is not http(s) is shown as text, never as a link."""
    report = render_report(make_incident(tmp_path, ticket_url="javascript:alert(1)"))
    assert 'href="javascript' not in report
    assert "javascript:alert(1)" in report


def test_report_lists_artifacts_with_their_hashes(report: str) -> None:
    """Collected artifacts appear with their collector, size and sha256."""
    assert "host.processes" in report
    assert ARTIFACT_HASH in report
    assert "2.0 KiB" in report


def test_report_shows_the_verification_given(tmp_path: Path) -> None:
    """A failed ledger check is shown as failed with its problem."""
    problem = "record 3: hash does not match its contents (edited?)"
    verification = {"ledger": {"ok": False, "count": 9, "problem": problem}}
    report = render_report(make_incident(tmp_path), verification)
    assert "FAILED" in report
    assert "(edited?)" in report


def test_report_says_when_nothing_was_verified(report: str) -> None:
    """Without a verification result the report says it was not checked."""
    assert "Not checked when this report was made" in report


def test_report_draws_a_waiting_gate_as_open_not_as_a_bar(tmp_path: Path) -> None:
    """A gate still waiting is drawn open-ended and the outcome says where the run waits."""
    report = render_report(make_incident(tmp_path, acknowledged=False))
    assert report.count('<rect class="bar ') == 2
    assert '<rect class="open waiting"' in report
    assert "waiting at contain" in report


def test_report_leaves_out_a_damaged_record(tmp_path: Path) -> None:
    """A record without an event or time is skipped and the rest of the report still renders."""
    folder = make_incident(tmp_path)
    with (folder / LEDGER_FILE).open("a") as ledger:
        ledger.write('{"seq": 99, "ts": "yesterday"}\n')
    report = render_report(folder)
    assert INCIDENT_ID in report
    assert report.count('<rect class="bar ') == 4


def test_report_flags_a_drill(tmp_path: Path) -> None:
    """A drill incident carries the DRILL badge."""
    assert ">DRILL<" in render_report(make_incident(tmp_path, drill=True))
    assert ">DRILL<" not in render_report(make_incident(tmp_path / "real"))


# -- in a real browser ------------------------------------------------------------------------


def chromium() -> str:
    """The headless browser to use, or skip the test when none is installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no chromium or chromium-browser binary on PATH (apt-get install chromium)")
    return found


def browse(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on a local page, isolated from the network and any profile."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)


class TimelineBars(HTMLParser):
    """Collects the class lists of the shapes inside the svg with id="timeline"."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.svgs = 0
        self.classes: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        if tag == "svg" and fields.get("id") == "timeline":
            self.svgs += 1
            self.depth = 1
        elif self.depth and tag == "svg":
            self.depth += 1
        elif self.depth and tag == "rect":
            self.classes.append((fields.get("class") or "").split())

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag == "svg":
            self.depth -= 1


@pytest.fixture
def page(tmp_path: Path) -> Path:
    """The report of the gated incident, written to a file."""
    path = tmp_path / "report.html"
    path.write_text(render_report(make_incident(tmp_path / "incidents")))
    return path


def test_browser_draws_one_bar_per_finished_step_and_gate(tmp_path: Path, page: Path) -> None:
    """In Chromium's DOM the timeline svg has one bar for each of the four finished items."""
    dom = browse(tmp_path, page, "--dump-dom").stdout
    bars = TimelineBars()
    bars.feed(dom)
    assert bars.svgs == 1
    assert sum("bar" in classes for classes in bars.classes) == len(parse_runbook(GATED).items)


def test_browser_screenshot_is_not_blank(tmp_path: Path, page: Path) -> None:
    """Chromium renders the report to a screenshot with real content (over 10 KB of PNG)."""
    png = tmp_path / "report.png"
    browse(tmp_path, page, f"--screenshot={png}", "--window-size=1280,2000")
    assert png.stat().st_size > 10_000
