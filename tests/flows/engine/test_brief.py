"""Ticket brief and timeline text built from a runbook and its ledger."""

from __future__ import annotations

from flows.engine.brief import incident_brief, opening_prose, timeline_text
from flows.evidence.records import GENESIS, Event, Record, RunbookRef
from flows.runbook.parse import parse_runbook
from tests.support import FIXTURES

GATED = FIXTURES / "runbooks" / "gated.md"


def record(event: Event, step: str, ts: str, actor: str = "engine") -> Record:
    """A record as the ledger reads it back; its place in a chain does not matter here."""
    return Record(
        seq=1,
        ts=ts,
        incident="inc-1",
        runbook=RunbookRef(id="gated", version=1, sha256=GENESIS),
        step=step,
        event=event,
        actor=actor,
        data={},
        prev=GENESIS,
        hash=GENESIS,
    )


def test_opening_prose_stops_before_the_first_step_heading() -> None:
    """The brief's prose is the text above the first step, without that step's heading."""
    runbook = parse_runbook(GATED)
    assert opening_prose(runbook) == "# Gated test incident"


def test_brief_names_runbook_severity_inputs_and_hash() -> None:
    """The brief carries the title, severity, incident, inputs and the document hash."""
    runbook = parse_runbook(GATED)
    brief = incident_brief(runbook, "inc-1", {"service": "api"})
    assert "**Gated test incident** (outage, sev2)" in brief
    assert "Incident `inc-1`" in brief and runbook.sha256[:12] in brief
    assert "- **service**: api" in brief


def test_timeline_lists_finished_items_with_who() -> None:
    """The timeline has one line per finished step or gate, naming who acknowledged gates."""
    records = [
        record(Event.STEP_STARTED, "ticket", "2026-11-26T10:00:00.000001Z"),
        record(Event.STEP_SUCCEEDED, "ticket", "2026-11-26T10:00:01.000001Z"),
        record(Event.GATE_ACKNOWLEDGED, "contain", "2026-11-26T10:05:00.000001Z", actor="alice"),
    ]
    assert timeline_text(records).splitlines() == [
        "2026-11-26 10:00:01Z  ticket: done",
        "2026-11-26 10:05:00Z  contain: acknowledged by alice",
    ]
