"""Who takes part in a drill: its participants and facilitator, as its `drill.started` named them.

In a drill only its people act: they answer its gates, add its notes and ratings and sign its
attendance, under the same roster rules as anyone (a typed `--by` must be the person the roster
says you are). A reviewer's sign-off closes the exercise: nobody acts in it after that. The
rules read the drill's own records, never the library scenario, which may have changed since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flows.evidence.records import Event, Record
from flows.runbook.identity import Actor
from flows.runbook.roster import Roster

FACILITATOR, PARTICIPANT, REVIEWER = "facilitator", "participant", "reviewer"


@dataclass(frozen=True)
class DrillPeople:
    """A drill's people: its scenario, facilitator and participants, and who closed it."""

    scenario: str
    facilitator: str
    participants: tuple[str, ...]
    closed_by: str | None = None
    """The reviewer whose sign-off closed the exercise; None while it is open."""

    def role_of(self, name: str) -> str | None:
        """`facilitator` or `participant` for one of the drill's people; None for anyone else."""
        folded = name.casefold()
        if self.facilitator and folded == self.facilitator.casefold():
            return FACILITATOR
        if any(folded == p.casefold() for p in self.participants):
            return PARTICIPANT
        return None

    def spelt(self) -> str:
        """The drill's people in words, for refusals."""
        people = ", ".join(self.participants) or "none"
        by = f"; facilitator {self.facilitator}" if self.facilitator else ""
        return f"participants {people}{by}"


def drill_people(records: Sequence[Record]) -> DrillPeople | None:
    """The people of the drill these records are of; None before its clock started (or when
    the records are no drill's)."""
    started = next((r for r in records if r.event is Event.DRILL_STARTED), None)
    if started is None:
        return None
    data = started.data
    names = tuple(
        str(p["name"]) for p in data.get("participants", []) if isinstance(p, dict) and "name" in p
    )
    facilitator = str(data.get("facilitator") or "")
    closing = next(
        (r for r in records if r.event is Event.DRILL_SIGNED_OFF and r.data.get("as") == REVIEWER),
        None,
    )
    return DrillPeople(
        scenario=str(data.get("scenario", "")),
        facilitator=facilitator,
        participants=names,
        closed_by=closing.actor if closing is not None else None,
    )


def drill_name(actor: Actor) -> str:
    """The name someone goes by in a drill: the roster person, else the name typed with
    `--by`, else the name the channel gave (the OS user, the Slack user name, a participant)."""
    return actor.person or actor.claimed or actor.name or actor.identity


def claim_problem(actor: Actor, roster: Roster | None) -> str:
    """A typed name must be who the proven identity is; without a roster it is only kept."""
    if not actor.claimed or roster is None:
        return ""
    if actor.person is None:
        return (
            f"{actor.identity} is not in the roster {roster.path}, so the engine cannot tell"
            f" whether it is {actor.claimed!r}; ask for your account to be added under"
            f" `people:` (os_users / slack), or leave --by out"
        )
    if actor.claimed.casefold() != actor.person.casefold():
        return (
            f"--by names {actor.claimed!r}, but {actor.identity} is {actor.person!r} in the"
            f" roster {roster.path}; nobody acts in another person's name"
        )
    return ""


def outsider_problem(actor: Actor, people: DrillPeople, doing: str) -> str:
    """Why `actor` may not act in this drill ('' when they may): they are none of its people,
    or a reviewer has closed it. `doing` names the act: "answer its gates", "add notes"."""
    if people.closed_by is not None:
        return closed_problem(people)
    name = drill_name(actor)
    if people.role_of(name) is not None:
        return ""
    how = (
        "the roster says that is you"
        if actor.person is not None
        else "name yourself with --by NAME if you are one of them"
    )
    return (
        f"{name} is not one of the people of drill {people.scenario!r} ({people.spelt()});"
        f" only they may {doing} ({how})"
    )


def closed_problem(people: DrillPeople) -> str:
    """Why nobody acts in a drill a reviewer closed; '' while it is open."""
    if people.closed_by is None:
        return ""
    return (
        f"drill {people.scenario!r} was closed by {people.closed_by}'s reviewer sign-off;"
        " nobody acts in it now: start a new drill"
    )
