"""The walk's rules for a step whose task the orchestrator ends oddly after it succeeded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from flows.contract.actions import Action, ActionContext, ActionRegistry, Reach
from flows.engine.execute import Execution, call_directly, execute
from flows.engine.registry import default_registry
from flows.engine.runner import load_plan
from flows.evidence.incident import Incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import Record, RunbookRef
from flows.evidence.redact import REDACTED, Redactor
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.model import Step
from integrations.backends import local_backends
from integrations.catalog import builtin_actions
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


def run_with(
    tmp_path: Path,
    call_step: StepCall,
    runbook: str = RUNBOOK,
    registry: ActionRegistry | None = None,
) -> tuple[str, list[Record], Path]:
    """Walk a runbook (one ticket) with `call_step` as the orchestrator; status, records, home."""
    path = tmp_path / "runbook.md"
    path.write_text(runbook)
    registry = registry or default_registry()
    plan = load_plan(path, registry)
    incident = Incident(
        id="INC-1",
        runbook=runbook_info(plan.runbook, path),
        inputs={},
        started_at="2026-11-27T00:00:00+00:00",
    )
    home, evidence = tmp_path / "home", tmp_path / "evidence"
    backends = local_backends(home, echo=None)
    ref = RunbookRef(
        id=plan.runbook.id, version=plan.runbook.meta.version, sha256=plan.runbook.sha256
    )
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


def step_events(records: list[Record]) -> list[str]:
    return [r.event for r in records if r.step == "ticket"]


def test_a_task_run_again_after_success_does_not_act_or_record_twice(tmp_path: Path) -> None:
    """An orchestrator retrying a task that already succeeded gets the first outputs back."""

    def twice(step: Step, act: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
        first = act()
        assert act() == first
        return first

    status, records, home = run_with(tmp_path, twice)
    assert status == "succeeded"
    assert step_events(records) == ["step.started", "step.succeeded"]
    assert records[-2].data["attempts"] == 1
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
    assert records[-2].outputs["key"] == "OPS-1"


def test_an_orchestrator_failing_before_the_action_fails_the_step(tmp_path: Path) -> None:
    """No action ran, so the step failed; no success is recorded."""

    def refuse(step: Step, act: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
        raise RuntimeError("no task slots")

    status, records, _ = run_with(tmp_path, refuse)
    assert status == "failed"
    assert step_events(records) == ["step.started", "step.failed"]


SECRET = "vault-token-5f3c9a"

MINT_RUNBOOK = """---
id: mint
title: Mint a token
kind: other
severity: sev3
version: 1
owner: "#t"
---
# Mint, use and announce a token
```step
id: mint
uses: vault.mint
```
```step
id: use
uses: vault.use
with:
  token: "{{ steps.mint.token }}"
```
```step
id: tell
uses: slack.post
with:
  channel: "#ops"
  text: "minted {{ steps.mint.token }} (lease {{ steps.mint.lease }})"
```
"""


class NoArgs(BaseModel):
    """No arguments."""


class UseArgs(BaseModel):
    """A token to use."""

    token: str


def mint_registry(seen: list[str]) -> ActionRegistry:
    """The built-in actions, one that mints a secret token and one that uses it."""

    def mint(args: NoArgs, ctx: ActionContext) -> dict[str, Any]:
        return {"token": SECRET, "lease": "lease-1"}

    def use(args: UseArgs, ctx: ActionContext) -> dict[str, Any]:
        seen.append(args.token)
        return {"echo": f"used {args.token}"}

    return ActionRegistry(
        [
            *builtin_actions(),
            Action(
                "vault.mint",
                NoArgs,
                mint,
                outputs=("token", "lease"),
                secret_outputs=("token",),
                reach=Reach.OUTSIDE,
            ),
            Action("vault.use", UseArgs, use, outputs=("echo",), reach=Reach.OUTSIDE),
        ]
    )


def test_secret_outputs_are_redacted_in_the_ledger_and_chat_but_reach_later_steps(
    tmp_path: Path,
) -> None:
    """A secret output is never in the ledger or chat, yet later steps get its value."""
    seen: list[str] = []
    status, _, home = run_with(tmp_path, call_directly, MINT_RUNBOOK, mint_registry(seen))
    assert status == "succeeded"
    assert seen == [SECRET]
    outputs = {r.step: r.data for r in read_records(tmp_path / "evidence") if r.outputs}
    assert outputs["mint"]["outputs"] == {"token": REDACTED, "lease": "lease-1"}
    assert outputs["mint"]["redactions"] == 1
    assert outputs["use"]["outputs"] == {"echo": f"used {REDACTED}"}
    assert SECRET not in (tmp_path / "evidence" / "ledger.jsonl").read_text()
    outbox = (home / "outbox.jsonl").read_text()
    assert SECRET not in outbox
    assert f"minted {REDACTED} (lease lease-1)" in outbox
