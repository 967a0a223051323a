"""```gate fences: read into the gate's policy at their lines, and checked by `runbook validate`
against the roster that governs the runbook."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli.app import main
from flows.errors import RunbookError
from flows.runbook.parse import parse_runbook
from flows.runbook.schema import runbook_schema

FRONT = """---
id: leak
title: Leak
kind: breach
severity: sev1
version: 1
owner: "#sec"
---
# Leak

## Triage {#triage}

- [ ] Scoped

## Contain {#contain}

```gate
approvers: {roles: [security], people: [alice]}
min_approvals: 2
separation: [starter, triage]
timeout_s: 600
on_timeout: escalate
escalate_to: security
remind_before_s: 120
```

- [ ] Revoked
"""

ROSTER = """roles:
  security: {}
  legal: {}
people:
  alice: {os_users: [alice], roles: [security]}
  chen: {os_users: [chen], roles: [security]}
"""


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


def write(folder: Path, body: str = FRONT, roster: str | None = ROSTER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "leak.md"
    path.write_text(body)
    if roster is not None:
        (folder / "responders.yaml").write_text(roster)
    return path


def validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_gate_fence_becomes_the_gates_policy_with_its_lines(tmp_path: Path) -> None:
    """The fence in a gate's section is that gate's policy; its keys keep their file lines."""
    runbook = parse_runbook(write(tmp_path))
    triage, contain = runbook.gates
    assert triage.policy is None
    assert contain.policy is not None and contain.policy_line == 17
    assert contain.policy.approvers is not None
    assert (contain.policy.approvers.roles, contain.policy.min_approvals) == (["security"], 2)
    assert contain.policy.separation == ["starter", "triage"]
    assert contain.key_lines["escalate_to"] == 23


def test_a_fence_after_the_checklist_is_its_gates_too(tmp_path: Path) -> None:
    """A ```gate fence below the checklist of its section governs that gate."""
    text = FRONT.replace(
        "## Triage {#triage}\n\n- [ ] Scoped\n",
        "## Triage {#triage}\n\n- [ ] Scoped\n\n```gate\napprovers: {people: [chen]}\n```\n",
    )
    triage = parse_runbook(write(tmp_path, text)).gates[0]
    assert triage.policy is not None and triage.policy.approvers is not None
    assert triage.policy.approvers.people == ["chen"]


def test_fence_mistakes_are_reported_at_their_lines(tmp_path: Path) -> None:
    """An unknown key, a fence outside any gate and a second fence are problems at their lines."""
    text = FRONT.replace("min_approvals: 2", "min_approval: 2").replace(
        "# Leak\n", "# Leak\n\n```gate\napprovers: {roles: [security]}\n```\n"
    )
    text += "\n```gate\n{}\n```\n"
    with pytest.raises(RunbookError) as error:
        parse_runbook(write(tmp_path, text))
    assert [(p.line, p.message) for p in error.value.problems] == [
        (11, "a ```gate fence outside any gate"),
        (23, "gate: unknown key 'min_approval'"),
        (33, "a second ```gate fence in the section 'Contain' (the first is at line 21)"),
    ]


def test_validate_accepts_names_the_roster_knows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy naming only the roster's roles and people, with a quorum it can meet, is valid."""
    assert validate(write(tmp_path), capsys)[:2] == (0, "1 runbook(s) valid\n")


def test_unknown_roles_people_and_groups_are_errors_at_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runbook validate` reports a role, person or group the roster lacks as path:line."""
    path = write(
        tmp_path,
        FRONT.replace(
            "approvers: {roles: [security], people: [alice]}",
            "approvers:\n  roles: [security, secuirty]\n  people: [alice]\n  groups: [secops]",
        ),
    )
    code, out, _ = validate(path, capsys)
    roster = tmp_path / "responders.yaml"
    assert code == 1
    assert f"{path}:19: gate 'contain': approvers: role 'secuirty' is not in {roster}" in out
    assert "did you mean 'security'?" in out
    assert f"{path}:21: gate 'contain': approvers: group 'secops' is not in {roster}" in out


def test_a_quorum_the_roster_cannot_meet_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """min_approvals above the number of people who may approve is reported at its line."""
    path = write(tmp_path, FRONT.replace("min_approvals: 2", "min_approvals: 3"))
    code, out, _ = validate(path, capsys)
    assert code == 1
    assert f"{path}:19: gate 'contain': needs 3 approval(s) but only 2 person(s)" in out
    assert "(alice, chen)" in out


def test_approvers_without_any_roster_are_an_error_and_open_gates_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no roster a gate declaring approvers is an error; otherwise validate says anyone may
    act, as a note that does not fail it."""
    path = write(tmp_path, roster=None)
    code, out, _ = validate(path, capsys)
    assert code == 1
    assert f"{path}:18: gate 'contain': approvers need a roster, and none governs" in out
    open_gates = FRONT.split("```gate")[0] + "- [ ] Revoked\n"
    path.write_text(open_gates)
    code, out, err = validate(path, capsys)
    assert (code, out) == (0, "1 runbook(s) valid\n")
    assert "note: no responders.yaml (nor RUNBOOK_ROSTER) governs 1 runbook(s)" in err
    assert "anyone may acknowledge their gates" in err


def test_separation_and_timer_settings_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Separation must name `starter` or a step or gate; the timer settings must agree."""
    path = write(
        tmp_path,
        FRONT.replace("[starter, triage]", "[starter, triaj]")
        .replace("on_timeout: escalate", "on_timeout: fail")
        .replace("remind_before_s: 120", "remind_before_s: 900"),
    )
    code, out, _ = validate(path, capsys)
    assert code == 1
    assert f"{path}:20: gate 'contain': separation: 'triaj' is no step or gate" in out
    assert f"{path}:23: gate 'contain': escalate_to is not used with on_timeout: fail" in out
    assert f"{path}:24: gate 'contain': remind_before_s must be less than timeout_s" in out


def test_a_broken_roster_is_reported_at_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A roster mistake makes validate fail at responders.yaml:line, once."""
    path = write(tmp_path, roster=ROSTER.replace("roles: [security]}", "roles: [securty]}", 1))
    (tmp_path / "other.md").write_text(FRONT.replace("id: leak", "id: other"))
    code, out, _ = validate(tmp_path, capsys)
    roster = tmp_path / "responders.yaml"
    assert code == 1
    assert out.count(f"{roster}:5: roster: person 'alice' holds role 'securty'") == 1
    assert str(path) not in out


def test_the_schema_publishes_the_gate_fence() -> None:
    """`runbook schema` carries the ```gate fence's definition beside the step's."""
    gate = runbook_schema()["$defs"]["GatePolicy"]
    assert {"approvers", "min_approvals", "separation", "timeout_s", "on_timeout"} <= set(
        gate["properties"]
    )
