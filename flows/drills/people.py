"""A drill's people in its record: notes and lessons, attendance, and the sign-off that closes it.

Who acts is the identity the channel proved (the OS account for the command line), matched to
the roster like at gates: a `--by` name must be the person the roster says you are, and without
a roster it is the name you go by in the drill. Only the drill's participants and facilitator
add notes and lessons and sign attendance (`flows.engine.participants`). A reviewer, someone
who is none of them, signs the exercise off; the first reviewer's sign-off closes it, and every
further reviewer signs a record of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flows.engine.approvals import incident_roster
from flows.engine.participants import (
    FACILITATOR,
    REVIEWER,
    DrillPeople,
    claim_problem,
    closed_problem,
    drill_name,
    drill_people,
    outsider_problem,
)
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.incident import Incident, incident_folder, load_incident
from flows.evidence.ledger import Ledger
from flows.evidence.population import note_standing
from flows.evidence.records import Event, Record, RunbookRef
from flows.evidence.verify import read_records
from flows.runbook.identity import Actor, Identity, identify, who_acted
from flows.runbook.roster import Roster

SignOffAs = Literal["facilitator", "reviewer"]


class DrillRefused(RunbookError):
    """Someone may not act in this drill (not one of its people, closed, twice)."""


@dataclass(frozen=True)
class _Drill:
    """A drill as an act finds it: its record, folder, ledger read back, people and roster."""

    incident: Incident
    folder: Path
    records: list[Record]
    people: DrillPeople
    roster: Roster | None


def add_drill_note(
    settings: Settings, incident: str, identity: Identity, text: str, *, lesson: bool = False
) -> str:
    """Record a note (or a lesson learned) in a drill's ledger by one of its people."""
    text = " ".join(text.split())
    if not text:
        raise RunbookError("give the note's text: it goes into the drill's evidence")
    drill = _drill(settings, incident)
    actor = _member(drill, identity, "add notes and lessons")
    event = Event.DRILL_LESSON if lesson else Event.DRILL_NOTE
    _record(settings, drill, event, actor, {"text": text})
    what = "lesson" if lesson else "note"
    return f"{what} recorded in drill {incident} by {drill_name(actor)}"


def attend_drill(settings: Settings, incident: str, identity: Identity) -> str:
    """Sign a drill's attendance as one of its participants (or its facilitator), once."""
    drill = _drill(settings, incident)
    actor = _member(drill, identity, "sign its attendance")
    name = drill_name(actor)
    signed = _attended(drill.records)
    if name.casefold() in signed:
        raise DrillRefused(f"{name} signed the attendance of drill {incident} already")
    role = drill.people.role_of(name)
    data = {"as": role, "role": _scenario_role(drill.records, name)}
    _record(settings, drill, Event.DRILL_ATTENDED, actor, data)
    return f"attendance of {name} ({role}) recorded in drill {incident}"


def sign_off_drill(
    settings: Settings, incident: str, identity: Identity, *, signing: SignOffAs, note: str = ""
) -> str:
    """Sign a drill off as its facilitator, or as a reviewer; a reviewer's sign-off closes it.

    A reviewer is none of the drill's people (and, with a roster, a person it names); each
    reviewer signs once, on a record of their own.
    """
    drill = _drill(settings, incident)
    scored = [r for r in drill.records if r.event is Event.DRILL_SCORED]
    if not scored:
        raise DrillRefused(f"drill {incident} has no score yet; sign it off once it has run")
    actor = identify(identity, drill.roster)
    problem = claim_problem(actor, drill.roster)
    if problem:
        raise DrillRefused(problem)
    name = drill_name(actor)
    earlier = [
        r
        for r in drill.records
        if r.event is Event.DRILL_SIGNED_OFF
        and r.data.get("as") == signing
        and r.actor.casefold() == name.casefold()
    ]
    if earlier:
        raise DrillRefused(f"{name} signed drill {incident} off as {signing} already")
    if signing == FACILITATOR:
        _check_facilitator(drill.people, name)
    else:
        _check_reviewer(drill, actor, name)
    attended = _attended(drill.records)
    everyone = [*drill.people.participants]
    data: dict[str, Any] = {
        "as": signing,
        "note": " ".join(note.split()),
        "status": scored[-1].data.get("status"),
        "attended": [p for p in everyone if p.casefold() in attended],
        "absent": [p for p in everyone if p.casefold() not in attended],
        "closes": signing == REVIEWER and drill.people.closed_by is None,
    }
    _record(settings, drill, Event.DRILL_SIGNED_OFF, actor, data)
    closed = "; the exercise is closed" if data["closes"] else ""
    return f"drill {incident} signed off by {name} as {signing}{closed}"


def _check_facilitator(people: DrillPeople, name: str) -> None:
    if people.closed_by is not None:
        raise DrillRefused(closed_problem(people))
    if people.role_of(name) != FACILITATOR:
        who = people.facilitator or "nobody (the scenario names no facilitator)"
        raise DrillRefused(
            f"{name} is not the facilitator of drill {people.scenario!r}: {who} is;"
            " sign off as a reviewer if you reviewed the exercise"
        )


def _check_reviewer(drill: _Drill, actor: Actor, name: str) -> None:
    role = drill.people.role_of(name)
    if role is not None:
        raise DrillRefused(
            f"{name} is {'the' if role == FACILITATOR else 'a'} {role} of drill"
            f" {drill.people.scenario!r}; a reviewer is someone"
            " who took no part in it, so the sign-off is independent"
        )
    if drill.roster is not None and actor.person is None:
        raise DrillRefused(
            f"{actor.identity} is not in the roster {drill.roster.path}; a reviewer signs off"
            " as a person the roster names (os_users / slack)"
        )


def _drill(settings: Settings, incident_id: str) -> _Drill:
    incident = load_incident(settings.incidents_dir, incident_id)
    if not incident.drill:
        raise RunbookError(
            f"incident {incident_id!r} is not a drill; add a note to it with"
            f" `runbook note {incident_id} TEXT`"
        )
    folder = incident_folder(settings.incidents_dir, incident_id)
    records = read_records(folder)
    people = drill_people(records)
    if people is None:
        raise RunbookError(
            f"drill {incident_id!r} never started its clock (no drill.started record), so it"
            " has no participants yet: run it, or start a new drill"
        )
    roster = incident_roster(settings, incident.runbook.source)
    return _Drill(incident, folder, records, people, roster)


def _member(drill: _Drill, identity: Identity, doing: str) -> Actor:
    """The actor, when they are one of the drill's people and it is open; refused otherwise."""
    actor = identify(identity, drill.roster)
    problem = claim_problem(actor, drill.roster) or outsider_problem(actor, drill.people, doing)
    if problem:
        raise DrillRefused(problem)
    return actor


def _attended(records: list[Record]) -> set[str]:
    return {r.actor.casefold() for r in records if r.event is Event.DRILL_ATTENDED}


def _scenario_role(records: list[Record], name: str) -> str:
    """The role the scenario gives a participant (`SRE on-call (IC)`); '' for the facilitator."""
    started = next(r for r in records if r.event is Event.DRILL_STARTED)
    for person in started.data.get("participants", []):
        if isinstance(person, dict) and str(person.get("name", "")).casefold() == name.casefold():
            return str(person.get("role", ""))
    return ""


def _record(
    settings: Settings, drill: _Drill, event: Event, actor: Actor, data: Mapping[str, Any]
) -> None:
    """Write one act to the drill's ledger: by the name they go by in it, with who they are."""
    info = drill.incident.runbook
    ref = RunbookRef(id=info.id, version=info.version, sha256=info.sha256)
    who = who_acted(actor, drill.roster)
    if actor.claimed:
        who["claimed"] = actor.claimed
    with Ledger(drill.folder, drill.incident.id, ref, settings.redactor()) as ledger:
        ledger.record(event, actor=drill_name(actor), data={**data, **who})
    note_standing(settings.incidents_dir, drill.folder)
