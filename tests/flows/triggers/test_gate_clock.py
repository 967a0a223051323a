"""The server's gate clock: waiting gates escalate, fail or continue on their timeouts, through
the real server (workers, intake, Prefect runs, the Slack app) and the real slack_sdk client
against a loopback fake Slack."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.engine.runner import acknowledge_gate
from flows.evidence.incident import new_incident_id
from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import os_identity
from flows.times import parse_utc
from flows.triggers.app import build_app
from flows.triggers.jobs import JobKind, JobState
from flows.triggers.server import Server, load_library, make_server
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.engine.timed_gates import write_library
from tests.flows.triggers.test_slack_server import (
    click_body,
    gate_button,
    signed,
    slack_settings,
    submit_body,
)
from tests.support import FIXTURES, serve_in_thread, wait_idle

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("ops")
        yield fake


def serving(home: Path, slack: FakeSlack, library: Path, scan_s: float) -> Server:
    """The trigger server over `library`, its gate clock scanning every `scan_s` seconds."""
    settings = slack_settings(home, slack, gate_scan_s=scan_s)
    server = make_server(settings, load_library(library), dev=False)
    server.workers.start()
    return server


def start(server: Server, path: Path) -> str:
    """Queue a start of the runbook, as an alert would, and wait until its run stops."""
    incident = new_incident_id("timed")
    server.state.intake.enqueue(JobKind.START, incident, str(path), {"inputs": {}})
    wait_idle(server)
    return incident


def records_until(
    home: Path, incident: str, done: Callable[[list[Record]], bool], timeout: float = 60
) -> list[Record]:
    """The incident's records once `done` holds for them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = read_records(home / "incidents" / incident)
        if done(records):
            return records
        time.sleep(0.1)
    raise AssertionError(f"incident {incident} never got there: {[r.event for r in records]}")


def finished(status: str) -> Callable[[list[Record]], bool]:
    def check(records: list[Record]) -> bool:
        ends = [r.data["status"] for r in records if r.event == "run.finished"]
        return bool(ends) and ends[-1] == status

    return check


def posts(slack: FakeSlack, containing: str) -> list[dict[str, Any]]:
    return [c.body for c in slack.calls("chat.postMessage") if containing in c.body["text"]]


def test_the_server_escalates_a_gate_past_its_timeout_once(
    home: Path, tmp_path: Path, slack: FakeSlack
) -> None:
    """The clock posts the escalation to the gate's channel mentioning the escalate_to role's
    people, records it, and a second scan does neither again; the run still waits."""
    path = write_library(tmp_path / "library", "escalate", timeout_s=60)
    server = serving(home, slack, path.parent, scan_s=3600)
    try:
        incident = start(server, path)
        records = read_records(home / "incidents" / incident)
        (waiting,) = [r for r in records if r.event == "gate.waiting"]
        later = waiting.at + timedelta(seconds=61)

        first = server.workers.gate_clock.scan(now=later)
        second = server.workers.gate_clock.scan(now=later + timedelta(seconds=60))
        wait_idle(server)
    finally:
        server.workers.stop()

    assert [a.due.act for a in first] == ["escalate"] and second == []
    (escalation,) = posts(slack, "Escalated to incident-commander")
    assert "<@U0IVY>" in escalation["text"] and "<!subteam^S0ONCALL>" in escalation["text"]
    assert len(posts(slack, "Waiting for acknowledgement")) == 1  # the gate, posted by its run
    records = read_records(home / "incidents" / incident)
    assert [r.data["outcome"] for r in records if r.event == "gate.timed_out"] == ["escalated"]
    assert [r.data["status"] for r in records if r.event == "run.finished"] == ["waiting"]
    assert server.state.intake.count_jobs(JobState.DONE) == 1  # no resume was queued


def test_the_server_clock_continues_a_gate_and_the_run_goes_on(
    home: Path, tmp_path: Path, slack: FakeSlack
) -> None:
    """A `continue` gate left waiting past its 1 s timeout is continued by the clock's own
    thread, and the resume it queues runs the rest of the runbook in a worker."""
    path = write_library(tmp_path / "library", "continue", timeout_s=1)
    server = serving(home, slack, path.parent, scan_s=0.2)
    try:
        incident = start(server, path)
        records = records_until(home, incident, finished("succeeded"))
        wait_idle(server)
    finally:
        server.workers.stop()

    (timed_out,) = [r for r in records if r.event == "gate.timed_out"]
    assert timed_out.data["outcome"] == "continued"
    closed = [r for r in records if r.step == "close" and r.event == "step.succeeded"]
    assert closed and closed[0].seq > timed_out.seq
    assert [r.data["steps"]["contain"] for r in records if r.event == "run.finished"] == [
        "waiting",
        "continued",
    ]
    assert verify_ledger(home / "incidents" / incident).ok


def test_a_fail_timeout_fails_the_run_and_a_late_button_press_is_refused(
    home: Path, tmp_path: Path, slack: FakeSlack
) -> None:
    """A `fail` gate past its timeout fails the run (the step after it never runs); pressing the
    gate's button afterwards is refused in the ledger and resumes nothing."""
    path = write_library(tmp_path / "library", "fail", timeout_s=1)
    server = serving(home, slack, path.parent, scan_s=0.2)
    try:
        with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
            incident = start(server, path)
            records_until(home, incident, finished("failed"))
            wait_idle(server)
            jobs = server.state.intake.count_jobs(JobState.DONE)

            (gate_post,) = posts(slack, "Waiting for acknowledgement")
            channel = slack.channel_named("ops")
            assert channel is not None
            ts = slack.messages[channel.id][0]["ts"]
            click = click_body(gate_button(gate_post), channel.id, "ops", ts)
            answer = client.post("/slack/interactions", content=click, headers=signed(click))
            assert answer.status_code == 200
            # The press opens the note dialog; its submission is the answer that is judged.
            submitted = submit_body(slack, "done")
            answer = client.post(
                "/slack/interactions", content=submitted, headers=signed(submitted)
            )
            assert answer.status_code == 200
            wait_idle(server)
            assert server.state.intake.count_jobs(JobState.DONE) == jobs
    finally:
        server.workers.stop()

    records = read_records(home / "incidents" / incident)
    (timed_out,) = [r for r in records if r.event == "gate.timed_out"]
    assert timed_out.data["outcome"] == "failed"
    assert not [r for r in records if r.step == "close"]
    (refused,) = [r for r in records if r.event == "gate.refused"]
    assert refused.actor == "bob" and "timed out" in refused.data["reason"]
    assert refused.seq > timed_out.seq
    assert [r.data["status"] for r in records if r.event == "run.finished"] == [
        "waiting",
        "failed",
    ]


def test_an_answered_gate_whose_resume_was_lost_is_continued_by_the_clock(
    home: Path, slack: FakeSlack, tmp_path: Path
) -> None:
    """The resume job an acknowledgement queues never came (the intake was down, the server
    was killed in between): a minute after the answer, the clock queues it, and the run goes
    on; before then it leaves the incident to its own job."""
    library = tmp_path / "library"
    library.mkdir()
    (library / "disk-full.md").write_text((FIXTURES / "library" / "disk-full.md").read_text())
    server = serving(home, slack, library, scan_s=3600)  # scans only when the test asks
    try:
        incident = new_incident_id("disk-full")
        path = library / "disk-full.md"
        server.state.intake.enqueue(JobKind.START, incident, str(path), {"inputs": {"host": "a"}})
        wait_idle(server)
        records_until(home, incident, finished("waiting"))
        acknowledge_gate(server.workers.settings, incident, "free-space", os_identity("ops", "h"))
        acked = parse_utc(read_records(home / "incidents" / incident)[-1].ts)
        clock = server.workers.gate_clock
        clock.scan(now=acked + timedelta(seconds=10))
        assert not server.state.intake.queued(incident)  # its own job may still be coming
        clock.scan(now=acked + timedelta(seconds=61))
        assert server.state.intake.queued(incident)
        wait_idle(server)
        records = records_until(home, incident, finished("succeeded"))
        assert [r.event for r in records].count(Event.RUN_RESUMED) == 1
        clock.scan(now=acked + timedelta(seconds=300))  # continued: nothing more to do
        assert not server.state.intake.queued(incident)
    finally:
        server.workers.stop()
