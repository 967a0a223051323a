"""The front matter's `steering` section: who may steer an incident, act by act, read with
defaults and checked by `runbook validate` against the roster."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli.app import main
from flows.runbook.parse import parse_runbook

FRONT = """---
id: leak
title: Leak
kind: breach
severity: sev1
version: 1
owner: "#sec"
{extra}---
# Leak

## Triage {{#triage}}

- [ ] Scoped
"""

ROSTER = """roles:
  incident-commander: {}
  security: {}
people:
  alice: {os_users: [alice], roles: [incident-commander]}
"""


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


def write(folder: Path, extra: str = "", roster: str | None = ROSTER) -> Path:
    path = folder / "leak.md"
    path.write_text(FRONT.format(extra=extra))
    if roster is not None:
        (folder / "responders.yaml").write_text(roster)
    return path


def test_without_a_section_the_commander_and_starter_steer_and_anyone_notes(
    tmp_path: Path,
) -> None:
    """Left out, every act is the commander role's and the starter's; status and notes are
    anyone's in the roster."""
    steering = parse_runbook(write(tmp_path)).meta.steering
    assert steering.who_may("abort") == ("incident-commander", "starter")
    assert steering.who_may("retry") == ("incident-commander", "starter")
    assert steering.who_may("note") == ("anyone",)
    assert steering.who_may("status") == ("anyone",)


def test_a_section_sets_acts_and_the_commander_role(tmp_path: Path) -> None:
    """Declared acts list their roles; another commander role is the default of the rest."""
    extra = "steering:\n  commander: security\n  skip: [security, starter]\n  note: [security]\n"
    steering = parse_runbook(write(tmp_path, extra)).meta.steering
    assert steering.who_may("skip") == ("security", "starter")
    assert steering.who_may("note") == ("security",)
    assert steering.who_may("abort") == ("security", "starter")


def test_validate_reports_roles_the_roster_lacks_at_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A steering role or commander the roster does not declare is an error at its line, with
    the closest name; `starter` and `anyone` are words, not roles."""
    extra = (
        "steering:\n"
        "  commander: comander\n"
        "  abort: [incident-commander, starter]\n"
        "  skip: [securty, anyone]\n"
    )
    path = write(tmp_path, extra)
    code = main(["validate", str(path)])
    out = capsys.readouterr().out
    roster = tmp_path / "responders.yaml"
    assert code == 1
    assert f"{path}:9: steering.commander: role 'comander' is not in {roster}" in out
    assert f"{path}:11: steering.skip: role 'securty' is not in {roster}" in out
    assert "did you mean 'security'?" in out
    assert "abort" not in out


def test_an_unknown_act_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`steering` takes only the acts the engine knows."""
    path = write(tmp_path, "steering: {reboot: [security]}\n")
    assert main(["validate", str(path)]) == 1
    assert "reboot" in capsys.readouterr().out


def test_steering_words_are_reserved_as_slack_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A runbook cannot take `/runbook abort` (or any other steering act) as its command."""
    path = write(tmp_path, "triggers:\n  slack: {command: abort}\n")
    assert main(["validate", str(path)]) == 1
    assert "slack command 'abort' is one of /runbook's own subcommands" in capsys.readouterr().out
