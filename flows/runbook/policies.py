"""Gate policies checked: on their own (`policy_problems`) and against the roster that governs
the runbook (`roster_problems`), every problem at the file line of the key it is about.
"""

from __future__ import annotations

from collections.abc import Sequence

from flows.errors import Problem
from flows.runbook.hints import line_of, suggest
from flows.runbook.model import STARTER, Gate, GatePolicy, Runbook
from flows.runbook.roster import ROSTER_FILE, Roster

_NEEDS_TARGET = ("escalate", "page")


def _at(runbook: Runbook, gate: Gate, loc: Sequence[str], message: str, hint: str = "") -> Problem:
    """A problem of `gate`'s policy at the line of the key `loc` (else of its fence)."""
    line = line_of(gate.key_lines, loc, gate.policy_line or gate.line)
    return Problem(runbook.path, line, f"gate '{gate.id}': {message}", hint)


def policy_problems(runbook: Runbook) -> list[Problem]:
    """What a gate policy gets wrong without any roster: separation naming no step or gate,
    timer settings that contradict each other, an empty approvers list."""
    problems: list[Problem] = []
    ids = [item.id for item in runbook.items]
    for gate in runbook.gates:
        policy = gate.policy
        if policy is None:
            continue

        for index, entry in enumerate(policy.separation):
            loc = ("separation", str(index))
            if entry == gate.id:
                problems.append(_at(runbook, gate, loc, "separation names the gate itself"))
            elif entry != STARTER and entry not in ids:
                hint = suggest(entry, [STARTER, *ids], known="`starter` or step and gate ids")
                message = f"separation: '{entry}' is no step or gate"
                problems.append(_at(runbook, gate, loc, message, hint))
        approvers = policy.approvers
        if approvers is not None and not (approvers.roles or approvers.people or approvers.groups):
            hint = "list `roles`, `people` or `groups`, or leave `approvers` out to let anyone pass"
            problems.append(_at(runbook, gate, ("approvers",), "approvers names nobody", hint))
        problems.extend(_at(runbook, gate, *found) for found in _timer_problems(policy))
    return problems


def _timer_problems(policy: GatePolicy) -> list[tuple[tuple[str, ...], str, str]]:
    found: list[tuple[tuple[str, ...], str, str]] = []
    if policy.timeout_s is None:
        for key in ("on_timeout", "escalate_to", "remind_before_s"):
            if getattr(policy, key) is not None:
                found.append(((key,), f"{key} needs timeout_s", "add `timeout_s: <seconds>`"))
        return found
    if policy.on_timeout is None:
        found.append(
            (
                ("timeout_s",),
                "timeout_s needs on_timeout",
                "add `on_timeout:` escalate, page, fail or continue",
            )
        )
    elif policy.on_timeout in _NEEDS_TARGET and policy.escalate_to is None:
        found.append(
            (
                ("on_timeout",),
                f"on_timeout: {policy.on_timeout} needs escalate_to",
                "name the role to reach, e.g. `escalate_to: incident-commander`",
            )
        )
    elif policy.on_timeout not in _NEEDS_TARGET and policy.escalate_to is not None:
        found.append(
            (
                ("escalate_to",),
                f"escalate_to is not used with on_timeout: {policy.on_timeout}",
                "remove it, or use on_timeout: escalate or page",
            )
        )
    if policy.remind_before_s is not None and policy.remind_before_s >= policy.timeout_s:
        found.append(
            (
                ("remind_before_s",),
                "remind_before_s must be less than timeout_s",
                f"timeout_s is {policy.timeout_s:g}",
            )
        )
    return found


def roster_problems(runbook: Runbook, roster: Roster | None) -> list[Problem]:
    """Every name a gate policy uses must be in the roster, and each quorum reachable; a policy
    with approvers needs a roster at all."""
    problems: list[Problem] = []
    for gate in runbook.gates:
        policy = gate.policy
        if policy is None:
            continue

        def problem(loc: Sequence[str], message: str, hint: str = "", *, at: Gate = gate) -> None:
            problems.append(_at(runbook, at, loc, message, hint))

        if roster is None:
            # escalate_to cannot be checked without one; approvers could never be met.
            if policy.approvers is not None:
                problem(
                    ("approvers",),
                    "approvers need a roster, and none governs this runbook",
                    f"add a {ROSTER_FILE} beside the runbook or in a folder above it, or set"
                    " RUNBOOK_ROSTER",
                )
            continue
        spec = roster.spec
        if policy.escalate_to is not None and policy.escalate_to not in spec.roles:
            problem(
                ("escalate_to",),
                f"escalate_to: role '{policy.escalate_to}' is not in {roster.path}",
                suggest(policy.escalate_to, spec.roles, known="roles"),
            )
        approvers = policy.approvers
        if approvers is None:
            continue
        unknown = 0
        for kind, names, known in (
            ("roles", approvers.roles, spec.roles),
            ("people", approvers.people, spec.people),
            ("groups", approvers.groups, spec.groups),
        ):
            for index, name in enumerate(names):
                if name not in known:
                    unknown += 1
                    singular = {"roles": "role", "people": "person", "groups": "group"}[kind]
                    problem(
                        ("approvers", kind, str(index)),
                        f"approvers: {singular} '{name}' is not in {roster.path}",
                        suggest(name, known, known=kind),
                    )
        eligible = roster.eligible(approvers)
        if unknown or eligible is None or len(eligible) >= policy.min_approvals:
            continue
        who = ", ".join(sorted(eligible)) or "nobody"
        problem(
            ("min_approvals",) if policy.min_approvals > 1 else ("approvers",),
            f"needs {policy.min_approvals} approval(s) but only {len(eligible)} person(s) in"
            f" {roster.path} may approve it ({who})",
            "give the role to more people, name more approvers, or lower min_approvals",
        )
    return problems
