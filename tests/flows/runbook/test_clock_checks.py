"""`runbook validate` on `clocks:`: ids, gates, their order and the owner role, each problem at
its file line with a hint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from flows.contract.actions import Action, ActionContext, ActionRegistry
from flows.errors import Problem
from flows.runbook.validate import validate_paths


class _Note(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    text: str


def _act(args: BaseModel, context: ActionContext) -> Mapping[str, Any]:
    return {}


REGISTRY = ActionRegistry([Action("evidence.note", _Note, _act)])

RUNBOOK = """---
id: privacy
title: Personal data exposed
kind: breach
severity: sev1
version: 1
owner: "#privacy"
clocks:
{clocks}
---
# Personal data exposed

```step
id: note
uses: evidence.note
with: {{text: opened}}
```

## Personal data breach determined {{#breach-determined}}
- [ ] Personal data was read by someone not allowed to

## Supervisory authority notified {{#dpa-notified}}
- [ ] Filed with the authority; its reference in the note

## Final report filed {{#final-report}}
- [ ] Final report filed
"""

ROSTER = "roles: {legal: {}, security: {}}\npeople:\n  lee: {roles: [legal]}\n"


def check(tmp_path: Path, clocks: str, roster: bool = True) -> list[Problem]:
    """The problems `runbook validate` reports for the runbook with these `clocks:` lines,
    beside a roster (or in a folder no roster governs)."""
    folder = tmp_path / ("library" if roster else "alone")
    folder.mkdir(exist_ok=True)
    path = folder / "privacy.md"
    path.write_text(RUNBOOK.format(clocks=clocks))
    if roster:
        (folder / "responders.yaml").write_text(ROSTER)
    _, problems = validate_paths([path], REGISTRY)
    return problems


def line_of(tmp_path: Path, text: str) -> int:
    """The file line holding `text`."""
    lines = (tmp_path / "library" / "privacy.md").read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def test_a_catalogue_clock_with_its_gates_and_owner_is_valid(tmp_path: Path) -> None:
    """gdpr-art33 started at the determination gate and stopped at the notified gate below it."""
    clocks = (
        "  - {id: gdpr-art33, starts_at: breach-determined, stops_at: dpa-notified,"
        " owner: legal, remind_before: 12h}"
    )
    assert check(tmp_path, clocks) == []


def test_an_unknown_clock_id_is_reported_with_the_closest_catalogue_id(tmp_path: Path) -> None:
    """A typo for a catalogue id names the id meant and how a custom clock is declared."""
    clocks = "  - id: gdpr-art34\n    starts_at: breach-determined\n    stops_at: dpa-notified\n"
    clocks += "    owner: legal"
    (problem,) = check(tmp_path, clocks)
    assert problem.line == line_of(tmp_path, "gdpr-art34")
    assert problem.message == "unknown clock 'gdpr-art34'"
    assert "did you mean 'gdpr-art33'?" in problem.hint
    assert "`hours`, `days` or `business_days`" in problem.hint


def test_a_gate_that_does_not_exist_or_is_a_step_is_reported_at_its_key(tmp_path: Path) -> None:
    """`starts_at` naming a step and `stops_at` a misspelt gate: each at its own line."""
    clocks = "  - id: gdpr-art33\n    starts_at: note\n    stops_at: dpa-notifed\n    owner: legal"
    problems = check(tmp_path, clocks)
    assert [(p.line, p.message) for p in problems] == [
        (
            line_of(tmp_path, "starts_at: note"),
            "clock 'gdpr-art33' starts_at: 'note' is a step; clocks start and stop when a gate"
            " is acknowledged",
        ),
        (
            line_of(tmp_path, "stops_at: dpa-notifed"),
            "clock 'gdpr-art33' stops_at: no gate 'dpa-notifed'",
        ),
    ]
    assert "did you mean 'dpa-notified'?" in problems[1].hint


def test_a_stop_gate_that_may_come_before_the_start_gate_is_reported(tmp_path: Path) -> None:
    """Started at the notified gate and stopped at the determination above it: the stop could
    be acknowledged before the clock starts."""
    clocks = "  - {id: hipaa-breach, starts_at: dpa-notified, stops_at: breach-determined,"
    clocks += " owner: legal}"
    (problem,) = check(tmp_path, clocks)
    assert problem.message == (
        "clock 'hipaa-breach': gate 'breach-determined' may be passed before 'dpa-notified'"
    )
    assert "list 'dpa-notified' in its `needs`" in problem.hint


def test_a_clock_with_milestones_needs_a_gate_for_each(tmp_path: Path) -> None:
    """NIS2 with one stop gate asks for a mapping naming each milestone; a mapping missing the
    final report is told which one is missing."""
    one = "  - {id: nis2-art23, starts_at: breach-determined, stops_at: dpa-notified, owner: legal}"
    (problem,) = check(tmp_path, one)
    assert problem.message == "clock 'nis2-art23' has 3 milestones: name the gate that files each"
    assert problem.hint == (
        "write `stops_at: {early-warning: <gate>, notification: <gate>, final-report: <gate>}`"
    )
    mapped = (
        "  - id: nis2-art23\n    starts_at: breach-determined\n    owner: legal\n"
        "    stops_at: {early-warning: dpa-notified, notification: dpa-notified}"
    )
    (missing,) = check(tmp_path, mapped)
    assert missing.message == "clock 'nis2-art23': no gate files milestone 'final-report'"
    full = mapped.replace("}", ", final-report: final-report}")
    assert check(tmp_path, full) == []


def test_the_owner_must_be_a_role_of_the_roster(tmp_path: Path) -> None:
    """An owner the roster lacks is reported with the closest role; without a roster there is
    nothing to check it against."""
    clocks = "  - {id: gdpr-art33, starts_at: breach-determined, stops_at: dpa-notified,"
    clocks += " owner: legall}"
    (problem,) = check(tmp_path, clocks)
    assert problem.message.startswith("clock 'gdpr-art33' owner: role 'legall' is not in ")
    assert problem.hint == "did you mean 'legal'?"
    assert check(tmp_path, clocks, roster=False) == []


def test_a_custom_clock_needs_one_duration_a_source_and_a_real_calendar(tmp_path: Path) -> None:
    """Two durations, no source, an unknown calendar and time zone: each said once."""
    clocks = (
        "  - id: contract-notice\n    starts_at: breach-determined\n    stops_at: dpa-notified\n"
        "    owner: legal\n    hours: 48\n    business_days: 2\n    calendar: XX\n"
        "    time_zone: Mars/Olympus"
    )
    messages = [p.message for p in check(tmp_path, clocks)]
    assert messages == [
        "custom clock 'contract-notice' needs `source`",
        "custom clock 'contract-notice' needs exactly one of `hours`, `days` or `business_days`"
        " (it has `hours`, `business_days`)",
        "clock 'contract-notice': unknown calendar 'XX'",
        "clock 'contract-notice': unknown time zone 'Mars/Olympus'",
    ]


def test_a_complete_custom_clock_is_valid(tmp_path: Path) -> None:
    """A contract's two German business days, with its source."""
    clocks = (
        "  - id: contract-notice\n    title: Customer contract notice\n"
        "    source: Master services agreement, section 12.3\n"
        "    business_days: 2\n    calendar: DE\n    time_zone: Europe/Berlin\n"
        "    day_ends: '18:00'\n"
        "    starts_at: breach-determined\n    stops_at: dpa-notified\n    owner: legal"
    )
    assert check(tmp_path, clocks) == []


def test_a_catalogue_clock_takes_no_duration_of_its_own(tmp_path: Path) -> None:
    """`hours` on gdpr-art33 would silently change a legal deadline: it is an error."""
    clocks = "  - {id: gdpr-art33, starts_at: breach-determined, stops_at: dpa-notified,"
    clocks += " owner: legal, hours: 96}"
    (problem,) = check(tmp_path, clocks)
    assert problem.message == "clock 'gdpr-art33' is from the catalogue: it takes no `hours`"


def test_a_variant_must_be_one_the_clock_has(tmp_path: Path) -> None:
    """The AI Act's variants are listed when the declared one is unknown."""
    clocks = "  - {id: eu-ai-act-art73, starts_at: breach-determined, stops_at: dpa-notified,"
    clocks += " owner: legal, variant: fatal}"
    (problem,) = check(tmp_path, clocks)
    assert problem.message == "clock 'eu-ai-act-art73' has no variant 'fatal'"
    assert "critical-infrastructure, death, general, widespread" in problem.hint


def test_a_missing_key_and_a_bad_duration_are_reported_by_the_schema(tmp_path: Path) -> None:
    """No `owner`, and `remind_before: 12 hours`: both at the clock's lines."""
    clocks = (
        "  - id: gdpr-art33\n    starts_at: breach-determined\n    stops_at: dpa-notified\n"
        "    remind_before: 12 hours"
    )
    messages = [p.message for p in check(tmp_path, clocks)]
    assert "front matter: missing required key 'owner' in clocks.0" in messages
    assert any(m.startswith("front matter: clocks.0.remind_before:") for m in messages)
