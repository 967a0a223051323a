"""The responders roster (`responders.yaml`): people, the roles they hold, and Slack user groups.

The roster says who a proven identity is (an OS account, a Slack user id) and what that person
may do; gate policies name its roles, people and groups. It is read like a runbook: YAML with
the file line of every key, so each problem is reported at `responders.yaml:line`.

Which roster governs a runbook: the `RUNBOOK_ROSTER` setting when it is set, else the nearest
`responders.yaml` in the runbook's folder or a parent of it, up to the working directory or the
repository root (a folder holding `.git`), whichever comes first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError

from flows.errors import Problem, RunbookError
from flows.runbook.hints import line_of, suggest
from flows.runbook.model import IDENTIFIER, Approvers, Strict
from flows.runbook.schema import validation_problems
from flows.runbook.yaml_lines import YamlProblem, load_yaml

ROSTER_FILE = "responders.yaml"

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
_HANDLE = re.compile(r"^@[^\s@]+$")


def _listed(value: Any) -> Any:
    """A single value where a list is expected is a list of one (`slack: U0ALICE`)."""
    return [value] if isinstance(value, str) else value


Id = Annotated[str, Field(pattern=IDENTIFIER)]
Names = Annotated[list[str], BeforeValidator(_listed)]


class Role(Strict):
    """A role people hold; gate policies name it under `approvers.roles` or `escalate_to`."""

    title: str = ""
    description: str = ""


class Person(Strict):
    """One responder: how the engine recognises them, and the roles they hold."""

    name: str = Field(default="", description="Full name, for people reading the evidence.")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    slack: Names = Field(
        default_factory=list,
        description="Slack user ids (U.., W..), which prove who pressed a button; @handles only"
        " recognise who started an incident from Slack.",
    )
    os_users: Names = Field(
        default_factory=list, description="OS user names they run `runbook` as."
    )
    roles: Names = Field(default_factory=list)


class Group(Strict):
    """A Slack user group whose members hold roles (and may be named by gate policies)."""

    slack: str | None = Field(default=None, description="The user group's id (S..) or @handle.")
    roles: Names = Field(default_factory=list)
    members: Names = Field(
        default_factory=list,
        description="Roster people known to be members, also when they act outside Slack.",
    )
    description: str = ""


class RosterFile(Strict):
    """The document `responders.yaml` holds."""

    roles: dict[Id, Role] = Field(default_factory=dict)
    people: dict[Id, Person] = Field(default_factory=dict)
    groups: dict[Id, Group] = Field(default_factory=dict)


@dataclass(frozen=True)
class Roster:
    """A checked roster and where it came from (the ledger names it by path and sha256)."""

    path: Path
    sha256: str
    spec: RosterFile
    lines: dict[str, int]

    @property
    def ref(self) -> dict[str, str]:
        """How records name this roster: its path and the sha256 of its bytes."""
        return {"path": str(self.path), "sha256": self.sha256}

    def person_of_os_user(self, os_user: str) -> str | None:
        """The person who runs `runbook` as this OS user, or None."""
        return next((pid for pid, p in self.spec.people.items() if os_user in p.os_users), None)

    def person_of_slack_user(self, user_id: str) -> str | None:
        """The person with this Slack user id (never a handle: handles can be renamed)."""
        return next((pid for pid, p in self.spec.people.items() if user_id in p.slack), None)

    def people_of_slack_name(self, name: str) -> set[str]:
        """The people whose listed @handle is this Slack user name."""
        handle = f"@{name}".casefold()
        return {
            pid
            for pid, person in self.spec.people.items()
            if handle in (entry.casefold() for entry in person.slack)
        }

    def groups_of(self, person: str | None, slack_groups: Iterable[str] = ()) -> set[str]:
        """The roster groups someone is in: listed as a member, or in the group in Slack."""
        in_slack = {group.removeprefix("@").casefold() for group in slack_groups}
        return {
            gid
            for gid, group in self.spec.groups.items()
            if (person is not None and person in group.members)
            or (group.slack is not None and group.slack.removeprefix("@").casefold() in in_slack)
        }

    def roles_of(self, person: str | None, groups: Iterable[str]) -> set[str]:
        """The roles a person holds themselves and through their groups."""
        roles = set(self.spec.people[person].roles) if person in self.spec.people else set()
        for gid in groups:
            roles.update(self.spec.groups[gid].roles)
        return roles

    def eligible(self, approvers: Approvers) -> set[str] | None:
        """The people the roster knows may approve; None when a group's members are known to
        Slack only, so nobody can count them from here."""
        people = {p for p in approvers.people if p in self.spec.people}
        for gid in approvers.groups:
            group = self.spec.groups.get(gid)
            if group is None:
                continue
            if group.slack is not None and not group.members:
                return None
            people.update(group.members)
        wanted = set(approvers.roles)
        for pid in self.spec.people:
            if wanted & self.roles_of(pid, self.groups_of(pid)):
                people.add(pid)
        return people


def roster_path(runbook: Path, setting: Path | None, *, stop: Path) -> Path | None:
    """The roster file governing `runbook`: `setting` (RUNBOOK_ROSTER) if given, else the
    nearest responders.yaml from its folder up to `stop` (the working directory) or the
    repository root; None when there is none."""
    if setting is not None:
        if not setting.is_file():
            raise RunbookError(
                Problem(
                    None,
                    None,
                    f"RUNBOOK_ROSTER names {setting}, which is not a file",
                    f"point it at a {ROSTER_FILE}, or unset it to use the one beside the runbooks",
                )
            )
        return setting
    stop = stop.resolve()
    folder = runbook.resolve().parent
    for candidate in (folder, *folder.parents):
        found = candidate / ROSTER_FILE
        if found.is_file():
            return found
        if candidate == stop or (candidate / ".git").exists():
            break
    return None


def load_roster(path: Path) -> Roster:
    """Read and check a roster; every problem is raised at its file line as a RunbookError."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeError) as error:
        raise RunbookError(Problem(path, None, f"cannot read the roster: {error}")) from None
    lines: dict[str, int] = {}
    try:
        data = load_yaml(text, 1, lines)
    except YamlProblem as problem:
        raise RunbookError(
            Problem(path, problem.line, f"roster: {problem.message}", problem.hint)
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RunbookError(
            Problem(path, 1, "roster: must be a YAML mapping", "start with `roles:` and `people:`")
        )
    try:
        spec = RosterFile.model_validate(data)
    except ValidationError as error:
        raise RunbookError(
            validation_problems(error, RosterFile, path=path, what="roster", lines=lines, line=1)
        ) from None
    problems = _cross_problems(spec, path, lines)
    if problems:
        raise RunbookError(problems)
    return Roster(path=path, sha256=hashlib.sha256(raw).hexdigest(), spec=spec, lines=lines)


def _cross_problems(spec: RosterFile, path: Path, lines: dict[str, int]) -> list[Problem]:
    """What the schema cannot see: names that must be declared, identities that must be unique."""
    problems: list[Problem] = []

    def problem(loc: tuple[str, ...], message: str, hint: str = "") -> None:
        problems.append(Problem(path, line_of(lines, loc, 1), f"roster: {message}", hint))

    def known_roles(owner: str, roles: list[str], loc: tuple[str, ...]) -> None:
        for index, role in enumerate(roles):
            if role not in spec.roles:
                hint = suggest(role, spec.roles, known="roles", prefix="declare it under `roles:`")
                problem(
                    (*loc, str(index)), f"{owner} holds role '{role}', which is not declared", hint
                )

    os_owner: dict[str, str] = {}
    slack_owner: dict[str, str] = {}
    for pid, person in spec.people.items():
        known_roles(f"person '{pid}'", person.roles, ("people", pid, "roles"))
        for index, user in enumerate(person.os_users):
            if user in os_owner:
                problem(
                    ("people", pid, "os_users", str(index)),
                    f"OS user '{user}' is listed for both '{os_owner[user]}' and '{pid}'",
                    "an OS account must name one person, or nobody can tell who acted",
                )
            os_owner.setdefault(user, pid)
        for index, entry in enumerate(person.slack):
            loc = ("people", pid, "slack", str(index))
            if not (_SLACK_USER.match(entry) or _HANDLE.match(entry)):
                problem(
                    loc,
                    f"slack entry '{entry}' of '{pid}' is no user id or @handle",
                    "write the Slack user id (U0123ABCD, from their profile) or @handle",
                )
            elif entry.casefold() in slack_owner:
                problem(
                    loc,
                    f"slack entry '{entry}' is listed for both "
                    f"'{slack_owner[entry.casefold()]}' and '{pid}'",
                )
            slack_owner.setdefault(entry.casefold(), pid)
    for gid, group in spec.groups.items():
        known_roles(f"group '{gid}'", group.roles, ("groups", gid, "roles"))
        if group.slack is not None and not (
            _SLACK_GROUP.match(group.slack) or _HANDLE.match(group.slack)
        ):
            problem(
                ("groups", gid, "slack"),
                f"slack of group '{gid}' is no user group id or @handle",
                "write the user group's id (S0123ABCD) or its @handle",
            )
        if group.slack is None and not group.members:
            problem(
                ("groups", gid),
                f"group '{gid}' has neither a Slack user group nor members",
                "add `slack: S0123ABCD` or `members: [...]`",
            )
        for index, member in enumerate(group.members):
            if member not in spec.people:
                problem(
                    ("groups", gid, "members", str(index)),
                    f"group '{gid}' lists '{member}', who is not among the people",
                    suggest(member, spec.people, known="people"),
                )
    return problems
