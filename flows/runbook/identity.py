"""Who is acting: an identity a channel proved, and the actor it is once matched to the roster.

A name typed into `--by` or at the prompt proves nothing: the engine takes who acts from the
channel itself. The command line knows the OS account it runs as, Slack signs the user id of a
button press, a drill's script names a scenario participant. `identify` matches that identity
to the roster and gives the `Actor`: the person (or None), the roles they hold, the groups they
are in. The ledger records both, so an auditor sees who was recognised and from what.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from flows.runbook.roster import Roster

Channel = Literal["cli", "terminal", "slack", "drill", "script"]
"""How someone acted: `runbook ack` (cli), the run's prompt (terminal), a Slack button, a
drill's scripted participant, or a responder in code that names a person (script)."""


@dataclass(frozen=True)
class Identity:
    """Who a channel says is acting, as it proved it; not yet matched to the roster.

    `raw` is what the channel proved: `os-user@host`, `slack:<user id>`, a participant's name.
    `claimed` is a name the person typed (`--by`): with a roster it must be the person `raw`
    belongs to; without one it is kept beside the proven identity.
    """

    channel: Channel
    raw: str
    os_user: str | None = None
    slack_user: str | None = None
    name: str = ""
    slack_groups: frozenset[str] = frozenset()
    claimed: str | None = None


def os_identity(
    os_user: str, host: str, *, claimed: str | None = None, channel: Channel = "cli"
) -> Identity:
    """The OS account running `runbook` (getpass.getuser(), socket.gethostname())."""
    claim = claimed.strip() if claimed else None
    return Identity(
        channel=channel, raw=f"{os_user}@{host}", os_user=os_user, name=os_user, claimed=claim
    )


def slack_identity(
    user_id: str, user_name: str, user_groups_of: Callable[[str], set[str]] | None = None
) -> Identity:
    """The user of a signed Slack request; `user_groups_of(user_id)` gives their user groups'
    ids and handles (looked up once, when given)."""
    groups = frozenset(user_groups_of(user_id)) if user_groups_of is not None else frozenset()
    return Identity(
        channel="slack",
        raw=f"slack:{user_id}",
        slack_user=user_id,
        name=user_name,
        slack_groups=groups,
    )


def named_identity(name: str, channel: Literal["drill", "script"] = "script") -> Identity:
    """Someone a responder in code names: a drill's scenario participant (`drill`), or a roster
    person a program answering gates names (`script`)."""
    return Identity(channel=channel, raw=name, name=name)


@dataclass(frozen=True)
class Actor:
    """An identity matched to the roster: the person (None when the roster does not know them
    or there is none), their roles and groups, and the keys separation of duties compares."""

    person: str | None
    identity: str
    channel: Channel
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    name: str = ""
    claimed: str | None = None
    keys: frozenset[str] = field(default_factory=frozenset)

    @property
    def label(self) -> str:
        """Who the ledger's `actor` names: the roster person, else the proven identity."""
        return self.person or self.identity


def identify(identity: Identity, roster: Roster | None) -> Actor:
    """Match an identity to the roster (by OS user, Slack user id or participant name)."""
    person: str | None = None
    groups: set[str] = set()
    roles: set[str] = set()
    if roster is not None:
        if identity.os_user is not None:
            person = roster.person_of_os_user(identity.os_user)
        elif identity.slack_user is not None:
            person = roster.person_of_slack_user(identity.slack_user)
        elif identity.raw in roster.spec.people:
            person = identity.raw
        groups = roster.groups_of(person, identity.slack_groups)
        roles = roster.roles_of(person, groups)
    return Actor(
        person=person,
        identity=identity.raw,
        channel=identity.channel,
        roles=frozenset(roles),
        groups=frozenset(groups),
        name=identity.name,
        claimed=identity.claimed,
        keys=identity_keys(identity.channel, identity.raw, person, identity.name),
    )


def who_acted(actor: Actor, roster: Roster | None) -> dict[str, Any]:
    """Who acted, as every record of an answer or a steering act says it: the person, the
    proven identity, the channel, the roster that judged them, and any name they typed."""
    who: dict[str, Any] = {
        "channel": actor.channel,
        "person": actor.person,
        "identity": actor.identity,
        "roster": roster.ref if roster is not None else None,
    }
    if actor.name:
        who["name"] = actor.name
    return who


def identity_keys(channel: str, raw: str, person: str | None, name: str = "") -> frozenset[str]:
    """What recognises someone for separation of duties: the person, and the account behind
    the identity (the OS user on any host, the Slack user id and name, the participant)."""
    keys = {f"person:{person}"} if person else set()
    if channel in ("cli", "terminal"):
        keys.add(f"os:{raw.rpartition('@')[0] or raw}")
    elif channel == "slack":
        keys.add(raw)
        if name:
            keys.add(f"slack-name:{name.casefold()}")
    else:
        keys.add(f"named:{raw}")
    return frozenset(keys)


def starter_keys(started_by: str | None, roster: Roster | None) -> frozenset[str]:
    """The keys of whoever started an incident, from its `started_by` (`cli:<os user>`,
    `slack:<user name>`, `drill:<facilitator>`); alerts are nobody."""
    if not started_by:
        return frozenset()
    how, _, who = started_by.partition(":")
    people: set[str] = set()
    keys: set[str] = set()
    if how == "cli":
        keys.add(f"os:{who}")
        found = roster.person_of_os_user(who) if roster else None
        people.update([found] if found else [])
    elif how == "slack":
        keys.add(f"slack-name:{who.casefold()}")
        people.update(roster.people_of_slack_name(who) if roster else ())
    elif how == "drill":
        keys.add(f"named:{who}")
        people.update([who] if roster and who in roster.spec.people else [])
    return frozenset(keys | {f"person:{p}" for p in people})
