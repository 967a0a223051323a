"""Steering while a run goes on: the walk honours an abort, a skip and a severity that another
process records meanwhile; and who may steer, decided from the runbook's `steering` section."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from flows.engine.execute import Execution, RunOutcome, execute
from flows.engine.registry import default_registry
from flows.engine.runner import load_plan
from flows.engine.settings import Settings
from flows.engine.steerers import decide_steering
from flows.engine.steering import abort_incident, set_severity, skip_step
from flows.evidence.incident import Incident, open_incident, runbook_info, running
from flows.evidence.ledger import Ledger
from flows.evidence.progress import Progress, progress_from_records
from flows.evidence.records import Event, Record, RunbookRef
from flows.evidence.redact import Redactor
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import identify, os_identity, slack_identity
from flows.runbook.model import Step
from flows.runbook.parse import parse_runbook
from flows.runbook.roster import Roster, load_roster
from integrations.backends import local_backends

RUNBOOK = """---
id: walked
title: Walked
kind: other
severity: sev3
version: 1
owner: "#t"
{steering}---
# Walked

## First
```step
id: first
uses: evidence.note
with: {{text: "first at {{{{ incident.severity }}}}"}}
```

## Second
```step
id: second
uses: evidence.note
with: {{text: "second at {{{{ incident.severity }}}}"}}
```

## Third
```step
id: third
uses: evidence.note
with: {{text: third}}
```
"""

ME = os_identity("someone", "laptop")
StepCall = Callable[[Step, Callable[[], Mapping[str, Any]]], Mapping[str, Any]]


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


def walk(
    tmp_path: Path, during_first: Callable[[Settings], object]
) -> tuple[RunOutcome, list[Record]]:
    """Open an incident and walk it, holding its run lock as the runner does; while the first
    step runs, `during_first` steers it as another process would."""
    path = tmp_path / "walked.md"
    path.write_text(RUNBOOK.format(steering=""))
    settings = Settings(home=tmp_path / "home", prefect="external")
    registry = default_registry()
    plan = load_plan(path, registry)
    incident = Incident(
        id="inc-walk",
        runbook=runbook_info(plan.runbook, path),
        inputs={},
        started_at="2026-11-27T00:00:00+00:00",
    )
    folder = open_incident(settings.incidents_dir, incident, plan.runbook.text)
    backends = local_backends(settings.home, echo=None)
    ref = RunbookRef(id="walked", version=1, sha256=plan.runbook.sha256)

    def call_step(step: Step, act: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
        if step.id == "first":
            during_first(settings)
        return act()

    with running(folder), Ledger(folder, incident.id, ref) as ledger:
        outcome = execute(
            Execution(
                plan=plan,
                incident=incident,
                inputs={},
                registry=registry,
                tickets=backends.tickets,
                chat=backends.chat,
                ledger=ledger,
                redactor=Redactor(),
                home=settings.home,
                evidence=folder,
                call_step=call_step,
            )
        )
    assert verify_ledger(folder).ok
    return outcome, read_records(folder)


def test_an_abort_recorded_while_the_run_goes_on_stops_it_before_the_next_step(
    tmp_path: Path,
) -> None:
    """The walk finishes the step it is in, runs no further step, and finishes as failed,
    naming who aborted and why; the abort leaves the run's finish to the run."""
    outcome, records = walk(
        tmp_path, lambda settings: abort_incident(settings, "inc-walk", ME, "wrong host")
    )
    assert outcome.status == "failed"
    assert outcome.error == "aborted by someone@laptop: wrong host"
    assert (outcome.steps["second"], outcome.steps["third"]) == ("pending", "pending")
    finished = [r for r in records if r.event is Event.RUN_FINISHED]
    assert len(finished) == 1
    assert finished[0].data["aborted"] == {"by": "someone@laptop", "reason": "wrong host"}
    assert not any(r.event is Event.STEP_STARTED and r.step == "second" for r in records)


def test_a_step_skipped_while_the_run_goes_on_is_not_run(tmp_path: Path) -> None:
    """A step skipped from elsewhere before the walk reaches it counts as skipped there."""
    outcome, records = walk(
        tmp_path,
        lambda settings: skip_step(settings, "inc-walk", ME, "second", "done by hand"),
    )
    assert outcome.status == "succeeded"
    assert outcome.steps["second"] == "skipped"
    second = [r.event for r in records if r.step == "second"]
    assert second == [Event.STEP_SKIPPED]


def test_a_severity_set_while_the_run_goes_on_is_what_later_steps_see(tmp_path: Path) -> None:
    """`incident.severity` in a later step's template is the severity a responder set."""
    outcome, records = walk(
        tmp_path, lambda settings: set_severity(settings, "inc-walk", ME, "SEV1")
    )
    assert outcome.status == "succeeded"
    notes = [r.data["text"] for r in records if r.event is Event.NOTE and r.step]
    assert notes == ["first at sev3", "second at sev1", "third"]
    changed = next(r for r in records if r.event is Event.INCIDENT_SEVERITY)
    assert (changed.data["severity"], changed.data["previous"]) == ("sev1", "sev3")


# -- who may steer ------------------------------------------------------------------------------


ROSTER = """roles: {incident-commander: {}, sre: {}, legal: {}}
people:
  ic: {slack: [U0IC], roles: [incident-commander]}
  sam: {slack: [U0SAM], roles: [sre]}
  lee: {slack: [U0LEE], roles: [legal]}
"""


def judged(
    tmp_path: Path, steering: str, started_by: str | None = "slack:sam"
) -> Callable[..., str]:
    """A judge of acts on an incident of a runbook with this `steering`, started by sam."""
    path = tmp_path / "walked.md"
    path.write_text(RUNBOOK.format(steering=steering))
    (tmp_path / "responders.yaml").write_text(ROSTER)
    runbook = parse_runbook(path)
    roster: Roster | None = load_roster(tmp_path / "responders.yaml")
    incident = Incident(
        id="inc-judged",
        runbook=runbook_info(runbook, path),
        inputs={},
        started_at="2026-11-27T00:00:00+00:00",
        started_by=started_by,
    )

    def judge(
        act: str, user: str, progress: Progress | None = None, without_roster: bool = False
    ) -> str:
        used = None if without_roster else roster
        actor = identify(slack_identity(user, user[2:].lower()), used)
        decision = decide_steering(
            act,  # type: ignore[arg-type]
            actor,
            runbook,
            incident,
            progress or Progress(),
            used,
        )
        return decision.authority if decision.allowed else f"refused: {decision.reason}"

    return judge


def test_by_default_the_commander_and_the_starter_steer_and_anyone_known_notes(
    tmp_path: Path,
) -> None:
    """Without a `steering` section: the commander role and the starter may abort, anyone in
    the roster may note and see status, and someone outside the roster may do neither."""
    judge = judged(tmp_path, "")
    assert judge("abort", "U0IC") == "role:incident-commander"
    assert judge("abort", "U0SAM") == "starter"
    assert judge("abort", "U0LEE").startswith(
        "refused: lee (legal) may not abort incident inc-judged: it needs role"
        " incident-commander or whoever started it"
    )
    assert judge("note", "U0LEE") == "anyone"
    assert judge("status", "U0LEE") == "anyone"
    assert judge("note", "U0NOBODY").startswith("refused: slack:U0NOBODY is not in the roster")
    assert judge("abort", "U0NOBODY", without_roster=True) == "no roster"


def test_a_steering_section_names_who_may_and_an_assignment_grants_its_role(
    tmp_path: Path,
) -> None:
    """Declared acts admit only the roles listed; someone assigned a role on the incident
    holds it for that incident."""
    judge = judged(tmp_path, "steering: {skip: [legal], abort: [incident-commander]}\n")
    assert judge("skip", "U0LEE") == "role:legal"
    assert judge("skip", "U0IC").startswith("refused: ic (incident-commander) may not skip")
    assert judge("abort", "U0SAM").startswith("refused: sam (sre) may not abort")
    assigned = progress_from_records(
        [
            Record.model_validate(
                {
                    "seq": 1,
                    "ts": "2026-11-27T00:00:01.000000Z",
                    "incident": "inc-judged",
                    "runbook": {"id": "walked", "version": 1, "sha256": "0" * 64},
                    "step": None,
                    "event": "incident.assigned",
                    "actor": "ic",
                    "data": {"role": "incident-commander", "assignee": "sam"},
                    "prev": "0" * 64,
                    "hash": "0" * 64,
                }
            )
        ]
    )
    assert assigned.assignments == {"incident-commander": "sam"}
    assert judge("abort", "U0SAM", assigned) == "assigned:incident-commander"
