"""Ticket brief and timeline text built from a runbook and its ledger."""

from __future__ import annotations

from flows.engine.brief import incident_brief, opening_prose, timeline_text
from flows.runbook.parse import parse_runbook
from tests.support import FIXTURES

GATED = FIXTURES / "runbooks" / "gated.md"


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
        {"event": "step.started", "step": "ticket", "ts": "2026-11-26T10:00:00.000001+00:00"},
        {
            "event": "step.succeeded",
            "step": "ticket",
            "ts": "2026-11-26T10:00:01.000001+00:00",
            "actor": "engine",
        },
        {
            "event": "gate.acknowledged",
            "step": "contain",
            "actor": "alice",
            "ts": "2026-11-26T10:05:00.000001+00:00",
        },
    ]
    assert timeline_text(records).splitlines() == [
        "2026-11-26 10:00:01Z  ticket: done",
        "2026-11-26 10:05:00Z  contain: acknowledged by alice",
    ]
