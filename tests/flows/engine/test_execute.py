"""The walk's rules for a step whose task the orchestrator ends oddly after it succeeded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flows.engine.execute import Execution, execute
from flows.engine.registry import default_registry
from flows.engine.runner import load_plan
from flows.evidence.incident import Incident, runbook_info
from flows.evidence.ledger import Ledger, RunbookRef, read_records, verify_ledger
from flows.evidence.redact import Redactor
from flows.runbook.model import Step
from integrations.backends import local_backends
from integrations.jira.local import LocalTicketStore

RUNBOOK = """---
id: one-ticket
title: One ticket
kind: other
severity: sev3
version: 1
owner: "#t"
---
# Open the ticket
```step
id: ticket
uses: jira.create_issue
with:
  project: OPS
  summary: "{{ incident.id }}"
```
"""

StepCall = Callable[[Step, Callable[[], Mapping[str, Any]]], Mapping[str, Any]]


def run_with(tmp_path: Path, call_step: StepCall) -> tuple[str, list[dict[str, Any]], Path]:
    """Walk the one-step runbook with `call_step` as the orchestrator; status, records, home."""
    path = tmp_path / "one-ticket.md"
    path.write_text(RUNBOOK)
    registry = default_registry()
    plan = load_plan(path, registry)
    incident = Incident(
        id="INC-1",
        runbook=runbook_info(plan.runbook, path),
        inputs={},
        started_at="2026-11-27T00:00:00+00:00",
    )
    home, evidence = tmp_path / "home", tmp_path / "evidence"
    backends = local_backends(home, echo=None)
    ref = RunbookRef(plan.runbook.id, plan.runbook.meta.version, plan.runbook.sha256)
    with Ledger(evidence, incident.id, ref) as ledger:
        run = Execution(
            plan=plan,
            incident=incident,
            inputs={},
            registry=registry,
            tickets=backends.tickets,
            chat=backends.chat,
            ledger=ledger,
            redactor=Redactor(),
            home=home,
            evidence=evidence,
            call_step=call_step,
        )
        outcome = execute(run)
    assert verify_ledger(evidence).ok
    return outcome.status, read_records(evidence), home


def step_events(records: list[dict[str, Any]]) -> list[str]:
    return [r["event"] for r in records if r["step"] == "ticket"]


def test_a_task_run_again_after_success_does_not_act_or_record_twice(tmp_path: Path) -> None:
    """An orchestrator retrying a task that already succeeded gets the first outputs back."""

    def twice(step: Step, act: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
        first = act()
        assert act() == first
        return first

    status, records, home = run_with(tmp_path, twice)
    assert status == "succeeded"
    assert step_events(records) == ["step.started", "step.succeeded"]
    assert records[-2]["data"]["attempts"] == 1
    assert len(LocalTicketStore(home / "tickets.db").list_tickets()) == 1


def test_an_orchestrator_failing_after_the_step_succeeded_keeps_it_succeeded(
    tmp_path: Path,
) -> None:
    """The ticket exists and its record is written: the step is not reported as failed."""

    def then_fail(step: Step, act: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
        act()
        raise RuntimeError("the orchestrator lost the task's final state")

    status, records, _ = run_with(tmp_path, then_fail)
    assert status == "succeeded"
    assert step_events(records) == ["step.started", "step.succeeded"]
    assert records[-2]["data"]["outputs"]["key"] == "OPS-1"


def test_an_orchestrator_failing_before_the_action_fails_the_step(tmp_path: Path) -> None:
    """No action ran, so the step failed; no success is recorded."""

    def refuse(step: Step, act: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
        raise RuntimeError("no task slots")

    status, records, _ = run_with(tmp_path, refuse)
    assert status == "failed"
    assert step_events(records) == ["step.started", "step.failed"]
