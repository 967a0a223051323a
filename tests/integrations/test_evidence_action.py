"""The evidence.note action writes a note record through the context's evidence log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flows.evidence.records import Event
from integrations.catalog import builtin_actions

RunAction = Callable[..., dict[str, Any]]


def test_note_writes_a_note_record(run_action: RunAction, evidence: Any) -> None:
    """The note lands in the ledger as a `note` of this step, with its text and data."""
    run_action("evidence.note", {"text": "Key revoked", "data": {"key_id": "AKIA1"}})
    [record] = evidence.records
    assert (record.event, record.step, record.data) == (
        "note",
        "step-1",
        {"text": "Key revoked", "data": {"key_id": "AKIA1"}},
    )


def test_note_returns_the_record_seq(run_action: RunAction, evidence: Any) -> None:
    """The output `seq` is the sequence number the ledger gave the note."""
    evidence.record(Event.RUN_STARTED, data={})
    assert run_action("evidence.note", {"text": "x"}) == {"seq": 2}


def test_note_has_no_outside_side_effects() -> None:
    """evidence.note is marked as touching nothing outside the ledger."""
    [note] = [a for a in builtin_actions() if a.name == "evidence.note"]
    assert note.side_effects is False
