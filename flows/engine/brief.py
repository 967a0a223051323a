"""Text for people: the incident brief that opens a ticket, and the timeline a comment carries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flows.evidence.records import Event, Record
from flows.runbook.model import Runbook
from flows.times import utc_stamp

BRIEF_PROSE_LIMIT = 4000
_TIMELINE_EVENTS = {
    Event.STEP_SUCCEEDED: "done",
    Event.STEP_FAILED: "FAILED",
    Event.STEP_SKIPPED: "skipped",
    Event.GATE_WAITING: "waiting",
    Event.GATE_ACKNOWLEDGED: "acknowledged",
}


def opening_prose(runbook: Runbook) -> str:
    """The document's prose between the front matter and the first step or gate."""
    lines = runbook.text.splitlines()
    closing = [i for i, line in enumerate(lines) if line.strip() == "---"][1:2]
    start = closing[0] + 1 if closing else 0
    first_item = min((item.line for item in runbook.items), default=len(lines) + 1)
    body = lines[start : first_item - 1]
    while body and body[-1].lstrip().startswith("#"):  # the first step's own heading
        body.pop()
    return "\n".join(body).strip()[:BRIEF_PROSE_LIMIT]


def incident_brief(runbook: Runbook, incident: str, inputs: Mapping[str, Any]) -> str:
    """Markdown summary of an incident for a ticket body: what, how bad, with which inputs."""
    meta = runbook.meta
    rows = "\n".join(f"- **{name}**: {value}" for name, value in inputs.items()) or "- (none)"
    criteria = ", ".join(meta.soc2) or "-"
    return (
        f"**{meta.title}** ({meta.kind}, {meta.severity})\n\n"
        f"Incident `{incident}`, runbook `{meta.id}` v{meta.version} "
        f"(sha256 {runbook.sha256[:12]}), owner {meta.owner}, SOC 2 {criteria}.\n\n"
        f"Inputs:\n{rows}\n\n{opening_prose(runbook)}"
    ).strip()


def timeline_text(records: Iterable[Record]) -> str:
    """One line per finished step or gate: time (UTC), item, outcome, who."""
    lines = []
    for record in records:
        outcome = _TIMELINE_EVENTS.get(record.event)
        if outcome is None:
            continue
        who = f" by {record.actor}" if record.actor not in ("", "engine") else ""
        when = utc_stamp(record.at, "seconds").replace("T", " ")
        lines.append(f"{when}  {record.step}: {outcome}{who}")
    return "\n".join(lines)
