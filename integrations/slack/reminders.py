"""What chat is told when a gate's timer fires: the reminder, the escalation and the page.

Each message mentions the people it is for (`<@U0123>` for a roster person's Slack user id,
`<!subteam^S0123>` for a Slack user group); everything else in it (titles, names, handles) is
escaped, so no text from a document or a roster can mention or link by itself. A person or
group Slack cannot be told about by id is named in plain text, so the message still says who
it is for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flows.evidence.escaping import chat_text as escape
from flows.evidence.spans import seconds_text
from flows.runbook.model import Gate
from flows.runbook.roster import Roster
from integrations.slack.commands import gate_blocks

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")

_THEN = {
    "escalate": "it is escalated to {role}",
    "page": "{role} is paged",
    "fail": "the run fails",
    "continue": "the run goes on without it",
}


@dataclass(frozen=True)
class Audience:
    """Who a message is for: the mrkdwn that tells them, and their roster ids (for the ledger)."""

    mentions: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The mentions in one line; empty when there is nobody to name."""
        return " ".join(self.mentions)


@dataclass(frozen=True)
class Notice:
    """One chat message: its text, its blocks (None: the text alone) and who it is for."""

    text: str
    audience: Audience
    blocks: list[dict[str, Any]] | None = None


def audience(
    roster: Roster | None,
    roles: Iterable[str] = (),
    people: Iterable[str] = (),
    groups: Iterable[str] = (),
) -> Audience:
    """The people holding `roles`, the `people` named and the `groups` named, as mentions.

    Without a roster nobody can be looked up: the roles and names are written as text.
    """
    roles, people, groups = list(roles), list(people), list(groups)
    if roster is None:
        return Audience(mentions=tuple(escape(name) for name in [*roles, *people, *groups]))
    spec = roster.spec
    wanted = set(roles)
    found_groups = [g for g in groups if g in spec.groups]
    found_groups += [
        gid for gid, group in spec.groups.items() if wanted & set(group.roles) and gid not in groups
    ]
    found_people = [p for p in people if p in spec.people]
    for pid in spec.people:
        holds = roster.roles_of(pid, roster.groups_of(pid))
        member = any(pid in spec.groups[gid].members for gid in found_groups)
        if (wanted & holds or member) and pid not in found_people:
            found_people.append(pid)
    mentions = [_person_mention(roster, pid) for pid in found_people]
    mentions += [_group_mention(roster, gid) for gid in found_groups]
    # A role nobody in the roster holds is still named, so the message says who it is for.
    held = {r for pid in found_people for r in roster.roles_of(pid, roster.groups_of(pid))}
    held |= {r for gid in found_groups for r in spec.groups[gid].roles}
    mentions += [escape(role) for role in roles if role not in held]
    return Audience(tuple(mentions), tuple(found_people), tuple(found_groups))


def _person_mention(roster: Roster, pid: str) -> str:
    person = roster.spec.people[pid]
    ids = [entry for entry in person.slack if _USER_ID.match(entry)]
    if ids:
        return f"<@{ids[0]}>"
    return escape(person.name or pid)


def _group_mention(roster: Roster, gid: str) -> str:
    group = roster.spec.groups[gid]
    if group.slack is not None and _GROUP_ID.match(group.slack):
        return f"<!subteam^{group.slack}>"
    return escape(group.slack or gid)


def approvers_of(gate: Gate, roster: Roster | None) -> Audience:
    """Who may pass the gate, as mentions; nobody in particular when anyone may."""
    approvers = gate.policy.approvers if gate.policy is not None else None
    if approvers is None:
        return Audience()
    return audience(roster, approvers.roles, approvers.people, approvers.groups)


def reminder(incident: str, title: str, gate: Gate, roster: Roster | None, left_s: float) -> Notice:
    """The gate times out in `left_s` seconds: its approvers are asked to pass it."""
    policy = gate.policy
    assert policy is not None and policy.on_timeout is not None
    who = approvers_of(gate, roster)
    then = _THEN[policy.on_timeout].format(role=escape(policy.escalate_to or ""))
    text = (
        f":alarm_clock: *{escape(title)}*: gate *{escape(gate.title)}* of incident"
        f" `{escape(incident)}` times out in {seconds_text(left_s)}; then {then}."
        f" {_asking(who)} {_how(incident, gate)}"
    )
    return Notice(text, who)


def escalation(
    incident: str, title: str, gate: Gate, roster: Roster | None, waited_s: float
) -> Notice:
    """The gate waited its timeout: the `escalate_to` role is told; the gate still waits."""
    policy = gate.policy
    assert policy is not None and policy.escalate_to is not None
    role = audience(roster, [policy.escalate_to])
    text = (
        f":rotating_light: *{escape(title)}*: gate *{escape(gate.title)}* of incident"
        f" `{escape(incident)}` has waited {seconds_text(waited_s)} without being passed."
        f" Escalated to {escape(policy.escalate_to)}: {role.text or 'nobody holds it'}."
        f" It still waits. {_asking(approvers_of(gate, roster))} {_how(incident, gate)}"
    )
    return Notice(text, role)


def page(incident: str, title: str, gate: Gate, roster: Roster | None, waited_s: float) -> Notice:
    """The gate waited its timeout: posted again with its button, paging `escalate_to`."""
    policy = gate.policy
    assert policy is not None and policy.escalate_to is not None
    role = audience(roster, [policy.escalate_to])
    head = (
        f":rotating_light: Paging {escape(policy.escalate_to)}"
        f" {role.text or '(nobody holds it)'}: gate *{escape(gate.title)}* of incident"
        f" `{escape(incident)}` has waited {seconds_text(waited_s)} and still waits."
    )
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": head}},
        *gate_blocks(incident, gate, title),
    ]
    return Notice(head, role, blocks)


def _asking(who: Audience) -> str:
    if not who.mentions:
        return "Anyone may pass it."
    return f"It may be passed by {who.text}."


def _how(incident: str, gate: Gate) -> str:
    return f"Pass it with the gate's button, or `runbook ack {escape(incident)} {escape(gate.id)}`."
