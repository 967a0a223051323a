"""Answers at gates, recorded: who acted is identified, the decision made, and the ledger told.

Every way of passing a gate comes through `answer_gate`: `runbook ack`, the run's own prompt,
a Slack button, a drill's script. It matches the identity to the roster, asks
`flows.engine.authority.decide`, and writes what it decided:

- `gate.acknowledged` when the answer passes the gate (its quorum met);
- `gate.approved` when it counts toward a quorum that needs more people;
- `gate.refused`, with the reason, when it does not count;
- `gate.rejected`, with the reason given, when someone who may pass the gate turns it down.

Each record says who (`person`), the proven `identity`, the `channel`, the `authority` that
allowed it, the approvals so far and the roster it was judged by. Deciding and recording happen
under the incident's gate lock, so two approvals arriving at once are counted one after the
other, never both as the first. An acknowledgement that starts or stops a regulatory clock is
followed, under the same lock, by its `clock.*` record (`flows.engine.clocks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flows.contract.ports import GateAnswer
from flows.engine.authority import GateDecision, Outcome, decide
from flows.engine.clocks import mark_clocks
from flows.engine.settings import Settings
from flows.evidence.incident import Incident
from flows.evidence.ledger import Ledger
from flows.evidence.records import Event
from flows.evidence.verify import read_records
from flows.files import locked
from flows.runbook.identity import Actor, Identity, identify, named_identity, who_acted
from flows.runbook.model import Gate
from flows.runbook.roster import Roster, load_roster, roster_path
from flows.times import utc_now

GATES_LOCK_FILE = "gates.lock"

_EVENTS = {
    Outcome.ACKNOWLEDGED: Event.GATE_ACKNOWLEDGED,
    Outcome.APPROVED: Event.GATE_APPROVED,
    Outcome.REFUSED: Event.GATE_REFUSED,
    Outcome.REJECTED: Event.GATE_REJECTED,
}


def incident_roster(settings: Settings, source: Path | str) -> Roster | None:
    """The roster governing a runbook document (an incident's `runbook.source`): RUNBOOK_ROSTER,
    else the nearest responders.yaml; None when there is none."""
    path = roster_path(Path(source), settings.roster, stop=Path.cwd())
    return load_roster(path) if path is not None else None


def answer_identity(answer: GateAnswer) -> Identity:
    """Who answered: the identity the responder proved, else the person its `by` names."""
    if answer.identity is not None:
        return answer.identity
    return named_identity(answer.by, "drill" if answer.via == "drill" else "script")


def answer_gate(
    ledger: Ledger,
    gate: Gate,
    identity: Identity,
    *,
    incident: Incident,
    roster: Roster | None,
    note: str = "",
    via: str | None = None,
    reject: bool = False,
) -> GateDecision:
    """Decide on one answer at `gate` and record the decision (nothing when `already`).

    `via` is how the answer came, as older records spelt it (default: the channel). With
    `reject` the answer turns the gate down, and `note` is the reason given.
    """
    actor = identify(identity, roster)
    with gate_lock(ledger.folder):
        decision = decide(
            gate,
            actor,
            read_records(ledger.folder),
            roster=roster,
            started_by=incident.started_by,
            drill=incident.drill,
            reject=reject,
        )
        if decision.outcome is not Outcome.ALREADY:
            data = _record_data(decision, actor, roster, note, via or actor.channel, reject)
            ledger.record(_EVENTS[decision.outcome], step=gate.id, actor=actor.label, data=data)
        if decision.outcome is Outcome.ACKNOWLEDGED:
            # A gate may start or stop a regulatory clock: its record follows the answer's.
            mark_clocks(ledger, utc_now())
    return decision


def _record_data(
    decision: GateDecision,
    actor: Actor,
    roster: Roster | None,
    note: str,
    via: str,
    reject: bool,
) -> dict[str, Any]:
    data: dict[str, Any] = {"note": note, "via": via, **who_acted(actor, roster)}
    if actor.claimed:
        data["claimed"] = actor.claimed
    if reject:
        data["answer"] = "reject"  # a refusal then says it refused a rejection
    if decision.outcome is Outcome.REFUSED:
        data["reason"] = decision.reason
        return data
    if decision.outcome is Outcome.REJECTED:
        data.update(reason=note, authority=decision.authority, roles=sorted(actor.roles))
        return data
    data.update(
        authority=decision.authority,
        roles=sorted(actor.roles),
        approvals=len(decision.approvals),
        needed=decision.needed,
        approvers=list(decision.approvals),
    )
    return data


@contextmanager
def gate_lock(folder: Path) -> Iterator[None]:
    """Hold the incident's gate lock: one decision about its gates at a time (answers, timeouts)."""
    # The ledger's own lock covers one record; this one covers reading the records, deciding
    # and recording, across processes (`runbook ack`, the server, a run asking at a prompt).
    with locked(folder / GATES_LOCK_FILE):
        yield
