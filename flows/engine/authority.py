"""May this actor pass this gate now? One plain function over the policy, roster and ledger.

`decide` reads nothing and writes nothing: given the gate (its ```gate policy), who is acting
(an `Actor`, matched to the roster), the incident's records and who started it, it returns a
`GateDecision` saying what the answer amounts to and why. `flows.engine.approvals` records it.

The rules, in the order they are checked:

1. a gate already acknowledged stays so (`already`);
2. a gate is answered only once the run has reached it (a `gate.waiting` record), and not
   after its timeout failed or continued it (`gate.timed_out`): the first recorded wins;
3. a name typed with the answer (`--by`) must be the person the roster says the identity is;
   in a drill, the actor must be one of its participants or its facilitator, and the drill
   not closed by a reviewer's sign-off (`flows.engine.participants`);
4. the actor must be an approver (a role, a named person or a group of the policy); a gate
   without `approvers` admits anyone, and in a drill a participant the roster does not know;
5. separation of duties: not whoever started the incident (`starter`), nor whoever acted on the
   steps and gates the policy lists;
6. each person counts once toward `min_approvals`; the gate is acknowledged when they are met.

A rejection (`reject=True`) passes the same checks 1 to 5: whoever may pass the gate may turn it
down, and one rejection fails it (`rejected`), whatever approvals came before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from flows.engine.participants import claim_problem, drill_people, outsider_problem
from flows.evidence.progress import ItemStatus, progress_from_records
from flows.evidence.records import Event, Record
from flows.runbook.identity import Actor, identity_keys, starter_keys
from flows.runbook.model import STARTER, Gate, GatePolicy
from flows.runbook.roster import ROSTER_FILE, Roster

OPEN = GatePolicy()
"""The policy of a gate without a ```gate fence: anyone, one approval."""

_TIMED_OUT = {
    ItemStatus.FAILED: "the run failed there",
    ItemStatus.CONTINUED: "the run went on without it",
}
"""What became of a gate its timeout settled (`gate.timed_out`), whoever answers after."""


class Outcome(StrEnum):
    """What an answer at a gate amounts to."""

    ACKNOWLEDGED = "acknowledged"
    """The gate is passed: this answer met its quorum."""
    APPROVED = "approved"
    """Counted, but the quorum needs more people: the gate still waits."""
    REFUSED = "refused"
    """Not counted; `reason` says why."""
    ALREADY = "already"
    """The gate was acknowledged before; nothing is recorded."""
    REJECTED = "rejected"
    """Turned down by someone who may pass it: the gate fails, and the run ends failed there."""


@dataclass(frozen=True)
class GateDecision:
    """The engine's answer to someone acting at a gate.

    `by` is who acted (the ledger's actor); `authority` what allowed it (`role:<role>`,
    `person:<id>`, `group:<group>`, `anyone`, `drill participant`); `approvals` who has
    approved so far, this answer included when it counts; `needed` the gate's quorum.
    """

    outcome: Outcome
    gate: str
    by: str
    reason: str = ""
    authority: str = ""
    approvals: tuple[str, ...] = ()
    needed: int = 1

    @property
    def acknowledged(self) -> bool:
        """True when this answer passed the gate."""
        return self.outcome is Outcome.ACKNOWLEDGED

    @property
    def message(self) -> str:
        """The decision in words, for the person who acted."""
        match self.outcome:
            case Outcome.ACKNOWLEDGED:
                return f"gate {self.gate!r} acknowledged by {self.by} ({self.authority})"
            case Outcome.APPROVED:
                more = self.needed - len(self.approvals)
                return (
                    f"gate {self.gate!r} approved by {self.by} ({len(self.approvals)} of"
                    f" {self.needed}); it waits for {more} more approval(s) by someone else"
                )
            case Outcome.ALREADY:
                return f"gate {self.gate!r} was already acknowledged"
            case Outcome.REJECTED:
                return (
                    f"gate {self.gate!r} rejected by {self.by} ({self.authority});"
                    " the run ends failed there"
                )
        return f"refused: {self.reason}"


def decide(
    gate: Gate,
    actor: Actor,
    records: Sequence[Record],
    *,
    roster: Roster | None,
    started_by: str | None,
    drill: bool = False,
    reject: bool = False,
) -> GateDecision:
    """Whether `actor` may pass `gate` now, given the incident's `records` (see the module);
    with `reject`, whether they may turn it down."""
    progress = progress_from_records(records)
    policy = gate.policy or OPEN
    prior = progress.approvals.get(gate.id, ())
    status = progress.statuses.get(gate.id)
    if status == ItemStatus.ACKNOWLEDGED:
        return GateDecision(Outcome.ALREADY, gate.id, actor.label, needed=policy.min_approvals)

    def refused(reason: str) -> GateDecision:
        return GateDecision(
            Outcome.REFUSED,
            gate.id,
            actor.label,
            reason,
            approvals=prior,
            needed=policy.min_approvals,
        )

    rejection = progress.rejections.get(gate.id)
    if rejection is not None:
        return refused(
            f"gate {gate.id!r} was rejected by {rejection.by} before this answer came, and the"
            " run failed there; it takes no answers now"
        )
    if status in _TIMED_OUT:
        return refused(
            f"gate {gate.id!r} timed out before this answer came: {_TIMED_OUT[status]}"
            f" (on_timeout: {policy.on_timeout}); it takes no answers now"
        )
    if status != ItemStatus.WAITING:
        waiting = [item for item, s in progress.statuses.items() if s == ItemStatus.WAITING]
        now = f"it waits at {', '.join(waiting)}" if waiting else "it waits at no gate now"
        return refused(
            f"gate {gate.id!r} is not reached yet, so it cannot be acknowledged ({now});"
            " acknowledge a gate once the run stops at it"
        )
    problem = (
        claim_problem(actor, roster)
        or _outsider_problem(actor, records, drill)
        or _approver_problem(policy, actor, roster, drill)
    )
    if problem:
        return refused(problem)
    problem = _separation_problem(gate, policy, actor, records, roster, started_by)
    if problem:
        return refused(problem)
    if reject:
        return GateDecision(
            Outcome.REJECTED,
            gate.id,
            actor.label,
            authority=_authority(policy, actor, drill),
            approvals=prior,
            needed=policy.min_approvals,
        )
    who = actor.person or actor.identity
    if who in prior:
        return refused(
            f"{actor.label} has already approved gate {gate.id!r} ({len(prior)} of"
            f" {policy.min_approvals}); each person counts once, so someone else must approve"
        )
    approvals = (*prior, who)
    outcome = Outcome.ACKNOWLEDGED if len(approvals) >= policy.min_approvals else Outcome.APPROVED
    return GateDecision(
        outcome,
        gate.id,
        actor.label,
        authority=_authority(policy, actor, drill),
        approvals=approvals,
        needed=policy.min_approvals,
    )


def _outsider_problem(actor: Actor, records: Sequence[Record], drill: bool) -> str:
    """In a drill, only its participants and facilitator answer, until a reviewer closes it."""
    people = drill_people(records) if drill else None
    return outsider_problem(actor, people, "answer its gates") if people is not None else ""


def _approver_problem(policy: GatePolicy, actor: Actor, roster: Roster | None, drill: bool) -> str:
    approvers = policy.approvers
    if approvers is None or _drill_participant(actor, drill):
        return ""
    wanted = _wanted(policy)
    if roster is None:
        return (
            f"the gate may be passed only by {wanted}, and no roster governs this incident;"
            f" add a {ROSTER_FILE} (or set RUNBOOK_ROSTER) naming who holds them"
        )
    if actor.person is None and not actor.groups:
        return (
            f"{actor.identity} is not in the roster {roster.path}; the gate may be passed only"
            f" by {wanted}"
        )
    if _authority(policy, actor, drill):
        return ""
    holds = ", ".join(sorted(actor.roles)) or "no role"
    return f"{actor.label} ({holds}) may not pass this gate: it needs {wanted}"


def _authority(policy: GatePolicy, actor: Actor, drill: bool) -> str:
    """What lets the actor pass: a person named, a role held, a group; '' when nothing does."""
    approvers = policy.approvers
    if approvers is None:
        return "anyone"
    if _drill_participant(actor, drill):
        return "drill participant"
    if actor.person is not None and actor.person in approvers.people:
        return f"person:{actor.person}"
    role = next((r for r in approvers.roles if r in actor.roles), None)
    if role is not None:
        return f"role:{role}"
    group = next((g for g in approvers.groups if g in actor.groups), None)
    return f"group:{group}" if group is not None else ""


def _drill_participant(actor: Actor, drill: bool) -> bool:
    """A drill's sandbox lets any scenario participant the roster does not know answer."""
    return drill and actor.channel == "drill" and actor.person is None


def _wanted(policy: GatePolicy) -> str:
    approvers = policy.approvers
    assert approvers is not None
    parts = [
        *(f"role {r}" for r in approvers.roles),
        *(f"person {p}" for p in approvers.people),
        *(f"group {g}" for g in approvers.groups),
    ]
    return " or ".join(parts)


def _separation_problem(
    gate: Gate,
    policy: GatePolicy,
    actor: Actor,
    records: Sequence[Record],
    roster: Roster | None,
    started_by: str | None,
) -> str:
    for entry in policy.separation:
        if entry == STARTER:
            if actor.keys & starter_keys(started_by, roster):
                return (
                    f"{actor.label} started this incident, and gate {gate.id!r} must be"
                    " approved by someone else (separation of duties)"
                )
            continue
        if any(actor.keys & _record_keys(r) for r in records if _acted_on(r, entry)):
            return (
                f"{actor.label} acted on {entry!r}, and gate {gate.id!r} must be approved by"
                f" someone else (separation of duties)"
            )
    return ""


_ACTED = frozenset({Event.GATE_APPROVED, Event.GATE_ACKNOWLEDGED})


def _acted_on(record: Record, item: str) -> bool:
    """A record of someone approving that gate, or running or requesting that step."""
    if record.step != item:
        return False
    return record.event in _ACTED or (
        record.event.value.startswith("step.") and record.actor != "engine"
    )


def _record_keys(record: Record) -> frozenset[str]:
    """The separation keys of whoever a record is by; older records know only their actor."""
    data = record.data
    channel, identity = data.get("channel"), data.get("identity")
    person = data.get("person")
    if isinstance(channel, str) and isinstance(identity, str):
        name = data.get("name")
        return identity_keys(
            channel,
            identity,
            person if isinstance(person, str) else None,
            name if isinstance(name, str) else "",
        )
    return frozenset({f"person:{record.actor}", f"named:{record.actor}", f"os:{record.actor}"})
