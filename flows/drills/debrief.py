"""After a drill: the plain-text debrief of its score, its people, notes, lessons and sign-offs."""

from __future__ import annotations

from pathlib import Path

from flows.drills.score import DrillScore
from flows.errors import RunbookError
from flows.evidence.incident import incident_folder, incidents_under
from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records, verify_ledger


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return (
        f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"
    )


def drill_report(home: Path, incident: str) -> str:
    """A plain-text summary of a scored drill: score, timeline against targets, injects, people,
    notes, lessons and sign-offs."""
    folder = incident_folder(incidents_under(home), incident)
    records = read_records(folder)
    scored = [r for r in records if r.event is Event.DRILL_SCORED]
    if not scored:
        raise RunbookError(f"incident {incident!r} has no scored drill under {home}")
    score = DrillScore.model_validate(scored[-1].data)
    people = ", ".join(f"{p.name} ({p.role})" if p.role else p.name for p in score.participants)
    wall = f", wall time {_clock(score.wall_s)}" if score.wall_s is not None else ""
    lines = [
        f"Drill {score.scenario}: {score.title}",
        f"Incident {incident}, runbook {score.runbook} v{score.runbook_version}, "
        f"run {score.status}, speed {score.speed:g}x, drill time {_clock(score.duration_s)}"
        f"{wall}",
        f"Facilitator: {score.facilitator or '-'}; participants: {people}",
        f"Score: {score.summary()}",
        "",
        f"{'item':<24} {'kind':<5} {'target':>8} {'reached':>8}  {'verdict':<13} by / note",
    ]
    for item in score.items:
        who = "; ".join(part for part in (item.by, item.note) if part)
        lines.append(
            f"{item.id:<24} {item.kind:<5} {_clock(item.target_s):>8} {_clock(item.at_s):>8}  "
            f"{item.verdict:<13} {who}".rstrip()
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
    attended = [
        f"{r.actor} ({r.data.get('as')}) at {r.ts}" for r in _of(records, Event.DRILL_ATTENDED)
    ]
    notes = [
        *score.notes,
        *(f"{r.data['text']} ({r.actor})" for r in _of(records, Event.DRILL_NOTE)),
        # `runbook note` on a drill; an evidence.note step's own notes are the runbook's.
        *(f"{r.data['text']} ({r.actor})" for r in _of(records, Event.NOTE) if r.actor != "engine"),
    ]
    lessons = [
        *score.lessons,
        *(f"{r.data['text']} ({r.actor})" for r in _of(records, Event.DRILL_LESSON)),
    ]
    signed = [_signed(r) for r in _of(records, Event.DRILL_SIGNED_OFF)]
    for heading, entries in (
        ("Attendance:", attended),
        ("Facilitator notes:", notes),
        ("Lessons learned:", lessons),
        ("Signed off:", signed),
    ):
        if entries:
            lines += ["", heading, *(f"  - {entry}" for entry in entries)]
    check = verify_ledger(folder)
    state = f"verifies ({check.count} records)" if check.ok else f"FAILS: {check.problem}"
    lines += ["", f"Evidence: ledger {state}"]
    return "\n".join(lines)


def _of(records: list[Record], *events: Event) -> list[Record]:
    return [r for r in records if r.event in events]


def _signed(record: Record) -> str:
    data = record.data
    note = f": {data['note']}" if data.get("note") else ""
    closes = ", closing the exercise" if data.get("closes") else ""
    absent = data.get("absent") or []
    missing = f"; absent: {', '.join(absent)}" if absent else ""
    return f"{record.actor} as {data.get('as')} at {record.ts}{closes}{note}{missing}"
