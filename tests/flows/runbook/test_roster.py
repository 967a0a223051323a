"""The responders roster: read at its lines, found beside the runbooks, matched to identities."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.errors import RunbookError
from flows.runbook.identity import identify, named_identity, os_identity, slack_identity
from flows.runbook.roster import load_roster, roster_path
from tests.support import PROJECT

ROSTER = """roles:
  security: {title: Security engineer}
  sre: {}
people:
  alice:
    name: Alice
    email: alice@example.com
    slack: [U0ALICE, "@alice"]
    os_users: [alice]
    roles: [security]
  bob:
    slack: U0BOB
    os_users: [bob]
    roles: [sre]
groups:
  secops:
    slack: S0SECOPS
    roles: [security]
    members: [alice]
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(RunbookError) as error:
        load_roster(path)
    return [str(problem) for problem in error.value.problems]


def test_the_shipped_roster_reads() -> None:
    """runbooks/responders.yaml is a valid roster."""
    roster = load_roster(PROJECT / "runbooks" / "responders.yaml")
    assert {"incident-commander", "security", "legal", "ml"} <= set(roster.spec.roles)


def test_an_undeclared_role_is_reported_at_its_line(tmp_path: Path) -> None:
    """A person holding a role the roster does not declare is a problem at that list item."""
    path = tmp_path / "responders.yaml"
    path.write_text(ROSTER.replace("roles: [sre]", "roles: [sre, secutiry]"))
    assert problems_of(path) == [
        f"{path}:14: roster: person 'bob' holds role 'secutiry', which is not declared"
        " (hint: declare it under `roles:`; did you mean 'security'?)"
    ]


def test_one_os_user_for_two_people_is_refused(tmp_path: Path) -> None:
    """An OS account listed for two people could not tell who acted: it is a problem."""
    path = tmp_path / "responders.yaml"
    path.write_text(ROSTER.replace("os_users: [bob]", "os_users: [alice]"))
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:13: roster: OS user 'alice' is listed for both")


def test_unknown_keys_and_members_are_reported_at_their_lines(tmp_path: Path) -> None:
    """Schema mistakes and a group member who is not a person are problems at their lines."""
    path = tmp_path / "responders.yaml"
    path.write_text(ROSTER.replace("    name: Alice\n", "    nmae: Alice\n"))
    assert problems_of(path)[0].startswith(f"{path}:6: roster: unknown key 'nmae'")
    path.write_text(ROSTER.replace("members: [alice]", "members: [alicia]"))
    assert problems_of(path)[0].startswith(
        f"{path}:19: roster: group 'secops' lists 'alicia', who is not among the people"
    )


def test_the_nearest_roster_up_to_the_working_directory_governs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The roster in the runbook's folder or a parent governs it; the search stops at the
    working directory; RUNBOOK_ROSTER wins over both."""
    library = tmp_path / "library"
    (library / "breach").mkdir(parents=True)
    runbook = library / "breach" / "leak.md"
    (tmp_path / "responders.yaml").write_text(ROSTER)  # above the working directory
    assert roster_path(runbook, None, stop=library) is None
    (library / "responders.yaml").write_text(ROSTER)
    assert roster_path(runbook, None, stop=library) == library / "responders.yaml"
    (library / "breach" / "responders.yaml").write_text(ROSTER)
    assert roster_path(runbook, None, stop=library) == library / "breach" / "responders.yaml"
    chosen = tmp_path / "responders.yaml"
    assert roster_path(runbook, chosen, stop=library) == chosen
    with pytest.raises(RunbookError, match=r"RUNBOOK_ROSTER names .* which is not a file"):
        roster_path(runbook, tmp_path / "missing.yaml", stop=library)


def test_identities_are_matched_by_account_never_by_typed_name(tmp_path: Path) -> None:
    """The OS user and the Slack user id name the person; a typed name is only a claim, and a
    participant's name matches a person of that id."""
    path = tmp_path / "responders.yaml"
    path.write_text(ROSTER)
    roster = load_roster(path)
    by_os = identify(os_identity("bob", "host-1", claimed="alice"), roster)
    assert (by_os.person, by_os.identity, by_os.claimed, by_os.roles) == (
        "bob",
        "bob@host-1",
        "alice",
        {"sre"},
    )
    by_slack = identify(slack_identity("U0ALICE", "alice-renamed"), roster)
    assert (by_slack.person, by_slack.groups, by_slack.roles) == ("alice", {"secops"}, {"security"})
    stranger = identify(slack_identity("U0EVE", "alice", lambda user: {"S0SECOPS"}), roster)
    assert (stranger.person, stranger.groups, stranger.roles) == (None, {"secops"}, {"security"})
    assert identify(named_identity("alice", "drill"), roster).person == "alice"
    assert identify(os_identity("carol", "host-1"), roster).person is None
