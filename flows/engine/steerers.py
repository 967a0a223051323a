"""Who may steer an incident, and the incident as a steering act finds it.

`decide_steering` is a plain function, like `flows.engine.authority.decide` for gates: given
the act, who is acting (an `Actor`, matched to the roster), the runbook's `steering` section and
the incident's progress, it returns a `SteerDecision` saying whether they may and why. It reads
and writes nothing; `flows.engine.steering` records what it decided.

The rules: without a roster anyone may steer (recorded as who they are). With one, the act's
`steering` entries are tried in order: `anyone` admits anyone the roster knows, `starter` whoever
started the incident, a role whoever holds it in the roster or was assigned it on this incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flows.engine.approvals import incident_roster
from flows.engine.settings import Settings
from flows.evidence.incident import DOCUMENT_FILE, Incident, incident_folder, load_incident
from flows.evidence.progress import Progress, progress_from_records
from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records
from flows.runbook.identity import Actor, starter_keys
from flows.runbook.model import ANYONE, STARTER, Runbook, SteeringAct
from flows.runbook.parse import parse_runbook
from flows.runbook.roster import Roster


@dataclass(frozen=True)
class SteerDecision:
    """Whether someone may steer an incident this way now, and why.

    `by` is who acted (the ledger's actor); `authority` what allowed it (`role:<role>`,
    `assigned:<role>`, `starter`, `anyone`, `no roster`); `reason` why it was refused.
    """

    act: SteeringAct
    incident: str
    by: str
    allowed: bool
    authority: str = ""
    reason: str = ""
    done: str = ""
    """What was done, in words, once the act is recorded."""

    @property
    def message(self) -> str:
        """The decision in words, for the person who acted."""
        if not self.allowed:
            return f"refused: {self.reason}"
        return self.done or f"{self.act} of {self.incident} allowed ({self.authority})"


def decide_steering(
    act: SteeringAct,
    actor: Actor,
    runbook: Runbook,
    incident: Incident,
    progress: Progress,
    roster: Roster | None,
) -> SteerDecision:
    """Whether `actor` may perform `act` on `incident`: by the runbook's `steering`, the roster
    and the roles assigned on this incident. It reads and writes nothing."""
    if roster is None:
        return SteerDecision(act, incident.id, actor.label, True, authority="no roster")
    wanted = runbook.meta.steering.who_may(act)
    for entry in wanted:
        authority = _authority(entry, actor, incident, progress, roster)
        if authority:
            return SteerDecision(act, incident.id, actor.label, True, authority=authority)
    needs = " or ".join(_spelt(entry) for entry in wanted) or "nobody"
    if actor.person is None and not actor.groups:
        reason = f"{actor.identity} is not in the roster {roster.path}; {act} needs {needs}"
    else:
        holds = ", ".join(sorted(actor.roles)) or "no role"
        reason = f"{actor.label} ({holds}) may not {_DOING[act]} {incident.id}: it needs {needs}"
    return SteerDecision(act, incident.id, actor.label, False, reason=reason)


def _authority(
    entry: str, actor: Actor, incident: Incident, progress: Progress, roster: Roster
) -> str:
    """What lets the actor act through this `steering` entry; '' when it does not."""
    if entry == ANYONE:
        return "anyone" if actor.person is not None or actor.groups else ""
    if entry == STARTER:
        return "starter" if actor.keys & starter_keys(incident.started_by, roster) else ""
    if entry in actor.roles:
        return f"role:{entry}"
    assigned = progress.assignments.get(entry)
    return f"assigned:{entry}" if assigned is not None and assigned == actor.person else ""


_DOING: dict[SteeringAct, str] = {
    "status": "see incident",
    "resume": "resume incident",
    "retry": "retry steps of incident",
    "skip": "skip steps of incident",
    "abort": "abort incident",
    "assign": "assign roles of incident",
    "severity": "change the severity of incident",
    "note": "add notes to incident",
}


def _spelt(entry: str) -> str:
    if entry == ANYONE:
        return "anyone in the roster"
    if entry == STARTER:
        return "whoever started it"
    return f"role {entry}"


# -- the incident as it stands ------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """One incident as an act finds it: its record, the document it runs, its roster, its
    ledger read back."""

    incident: Incident
    folder: Path
    runbook: Runbook
    roster: Roster | None
    records: list[Record]
    progress: Progress

    def last_status(self) -> str | None:
        """The status of its latest `run.finished`, or None when no run has finished."""
        finished = [r for r in self.records if r.event is Event.RUN_FINISHED]
        return str(finished[-1].data.get("status")) if finished else None


def load_scene(settings: Settings, incident_id: str) -> Scene:
    """The incident as it stands now; a clear RunbookError when there is no such incident."""
    incident = load_incident(settings.incidents_dir, incident_id)
    folder = incident_folder(settings.incidents_dir, incident_id)
    records = read_records(folder)
    return Scene(
        incident=incident,
        folder=folder,
        runbook=parse_runbook(folder / DOCUMENT_FILE),
        roster=incident_roster(settings, incident.runbook.source),
        records=records,
        progress=progress_from_records(records),
    )
