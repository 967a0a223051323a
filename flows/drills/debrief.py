"""After a drill: the facilitator's notes and lessons, and the plain-text debrief of its score."""

from __future__ import annotations

from pathlib import Path

from flows.drills.score import DrillScore
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.incident import incident_folder, incidents_under, load_incident
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event, RunbookRef
from flows.evidence.redact import Redactor
from flows.evidence.verify import read_records, verify_ledger


def add_drill_note(
    settings: Settings, incident: str, text: str, by: str, *, lesson: bool = False
) -> None:
    """Record a facilitator's note (or a lesson learned) in a drill incident's ledger."""
    if not text.strip() or not by.strip():
        raise RunbookError("a drill note needs its text and who wrote it (--by)")
    found = load_incident(settings.incidents_dir, incident)
    if not found.drill:
        raise RunbookError(f"incident {incident!r} is not a drill; use `runbook note` instead")
    ref = RunbookRef(
        id=found.runbook.id, version=found.runbook.version, sha256=found.runbook.sha256
    )
    folder = incident_folder(settings.incidents_dir, incident)
    with Ledger(folder, incident, ref, Redactor()) as ledger:
        event = Event.DRILL_LESSON if lesson else Event.DRILL_NOTE
        ledger.record(event, actor=by, data={"text": text})


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return (
        f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"
    )


def drill_report(home: Path, incident: str) -> str:
    """A plain-text summary of a scored drill: score, timeline against targets, injects, notes."""
    folder = incident_folder(incidents_under(home), incident)
    records = read_records(folder)
    scored = [r for r in records if r.event is Event.DRILL_SCORED]
    if not scored:
        raise RunbookError(f"incident {incident!r} has no scored drill under {home}")
    score = DrillScore.model_validate(scored[-1].data)
    people = ", ".join(f"{p.name} ({p.role})" if p.role else p.name for p in score.participants)
    lines = [
        f"Drill {score.scenario}: {score.title}",
        f"Incident {incident}, runbook {score.runbook} v{score.runbook_version}, "
        f"run {score.status}, speed {score.speed:g}x, drill time {_clock(score.duration_s)}",
        f"Facilitator: {score.facilitator or '-'}; participants: {people}",
        f"Score: {score.on_time} on time, {score.late} late, {score.missed} missed, "
        f"{score.failed} failed",
        "",
        f"{'item':<24} {'kind':<5} {'target':>8} {'reached':>8}  {'verdict':<10} by / note",
    ]
    for item in score.items:
        who = "; ".join(part for part in (item.by, item.note) if part)
        lines.append(
            f"{item.id:<24} {item.kind:<5} {_clock(item.target_s):>8} {_clock(item.at_s):>8}  "
            f"{item.verdict:<10} {who}".rstrip()
        )
    if score.injects:
        lines += ["", "Injects:"]
        for inject in score.injects:
            when = (
                f"fired at +{_clock(inject.fired_at_s)}"
                if inject.fired_at_s is not None
                else "not fired (the drill ended first)"
            )
            lines.append(f"  +{_clock(inject.at_s)} {inject.kind}: {inject.text or '-'} ({when})")
    notes = [
        *score.notes,
        *(f"{r.data['text']} ({r.actor})" for r in records if r.event is Event.DRILL_NOTE),
    ]
    lessons = [
        *score.lessons,
        *(f"{r.data['text']} ({r.actor})" for r in records if r.event is Event.DRILL_LESSON),
    ]
    for heading, entries in (("Facilitator notes:", notes), ("Lessons learned:", lessons)):
        if entries:
            lines += ["", heading, *(f"  - {entry}" for entry in entries)]
    check = verify_ledger(folder)
    state = f"verifies ({check.count} records)" if check.ok else f"FAILS: {check.problem}"
    lines += ["", f"Evidence: ledger {state}"]
    return "\n".join(lines)
