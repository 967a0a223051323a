"""An incident's progress, read back from its evidence ledger: the ledger is the source of truth.

Resume, `ack`, status reports and the JSON outcome all derive step states from the records, so
nothing can claim a step is done unless its record is on disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DONE = frozenset({"succeeded", "skipped", "acknowledged"})

_STATUS_BY_EVENT = {
    "step.started": "running",
    "step.retried": "running",
    "step.succeeded": "succeeded",
    "step.failed": "failed",
    "step.skipped": "skipped",
    "gate.waiting": "waiting",
    "gate.acknowledged": "acknowledged",
}


@dataclass(frozen=True)
class Acknowledgement:
    """Who acknowledged a gate, when, and what they noted."""

    gate: str
    by: str
    at: str
    note: str = ""


@dataclass(frozen=True)
class Progress:
    """Latest status of every step and gate, the outputs of finished steps, and gate acks."""

    statuses: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    acks: Mapping[str, Acknowledgement] = field(default_factory=dict)
    runs: int = 0

    def is_done(self, item_id: str) -> bool:
        """True when the step or gate needs nothing more on resume."""
        return self.statuses.get(item_id) in DONE


def progress_from_records(records: Iterable[Mapping[str, Any]]) -> Progress:
    """Fold ledger records into the current progress of the incident."""
    statuses: dict[str, str] = {}
    outputs: dict[str, Mapping[str, Any]] = {}
    acks: dict[str, Acknowledgement] = {}
    runs = 0
    for record in records:
        event, item = record.get("event"), record.get("step")
        if event in ("run.started", "run.resumed"):
            runs += 1
        if item is None or event not in _STATUS_BY_EVENT:
            continue
        if event == "gate.waiting" and statuses.get(item) == "acknowledged":
            continue
        statuses[item] = _STATUS_BY_EVENT[event]
        data = record.get("data") or {}
        if event == "step.succeeded":
            outputs[item] = data.get("outputs", {})
        elif event == "gate.acknowledged":
            acks[item] = Acknowledgement(
                gate=item,
                by=str(record.get("actor", "")),
                at=str(record.get("ts", "")),
                note=str(data.get("note", "")),
            )
    return Progress(statuses=statuses, outputs=outputs, acks=acks, runs=runs)
