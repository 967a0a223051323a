"""Walk a checked plan for one incident: gates, conditions, templates, failures, evidence.

This module knows nothing of Prefect. `compile.py` hands it a `StepSubmit` that starts each step
as a Prefect task on Prefect's thread pool; tests of the walking rules can hand it a plain
`StepCall` instead, which runs one step after the other. Every state change is written to the
ledger before the walk moves on, so the ledger always tells where a resume must start.

Steps run side by side where the runbook says they may: a step that declares `needs` starts as
soon as those are finished, beside whatever runs; an item without `needs` (every gate) follows
the item above it as it always did, so it starts once everything started before it has
finished, and nothing starts beside it. The walk itself stays on one thread: it starts steps,
and it alone reads their futures and changes what it knows; the steps' threads only act and
append their own records to the ledger, which takes one record at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from flows.contract.actions import Action
from flows.contract.ports import GateListener
from flows.engine.approvals import answer_gate, answer_identity
from flows.engine.attempts import StepAttempts, describe
from flows.engine.brief import incident_brief
from flows.engine.execution import (
    Execution,
    RunOutcome,
    Simulator,
    StepCall,
    StepSubmit,
    call_directly,
)
from flows.engine.foreach import for_each_items, item_id, recorded_counts, recorded_items
from flows.engine.gate_timers import act_on_due
from flows.evidence.incident import incident_facts
from flows.evidence.ledger import plain_json
from flows.evidence.progress import DONE, Abort, ItemStatus, RunStatus, progress_from_records
from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records
from flows.runbook.model import Gate, Step
from flows.runbook.templates import TemplateFailure, escapes_of, evaluate, render_arguments
from flows.times import utc_now

# What a run needs lives in execution.py; callers keep importing it from here, with the walk.
__all__ = [
    "Execution",
    "RunOutcome",
    "Simulator",
    "StepCall",
    "StepSubmit",
    "call_directly",
    "execute",
]


class _Walk:
    """The mutable state of one walk over the plan."""

    def __init__(self, run: Execution) -> None:
        self.run = run
        records = read_records(run.evidence)
        progress = progress_from_records(records)
        ids = {item.id for item in run.plan.runbook.items}
        self.statuses: dict[str, ItemStatus] = dict(progress.statuses)
        outputs = {k: dict(v) for k, v in progress.outputs.items()}
        self.outputs: dict[str, Any] = {k: v for k, v in outputs.items() if k in ids}
        self.item_outputs = {k: v for k, v in outputs.items() if k not in ids}
        """What each finished for_each item returned (`scan[0]`), from the ledger."""
        counts = recorded_counts(records)
        for step in run.plan.runbook.steps:
            if step.id in counts and self.statuses.get(step.id) == ItemStatus.SUCCEEDED:
                self.outputs[step.id] = [
                    self.item_outputs.get(item_id(step.id, i), {}) for i in range(counts[step.id])
                ]
        self.started_items = recorded_items(records)
        self.error: str | None = None
        self.aborted: Abort | None = progress.aborted
        self.rejections = dict(progress.rejections)
        self.severity = progress.severity or run.plan.runbook.meta.severity
        shown_inputs, _ = run.redactor.redact(run.inputs)
        self.brief = incident_brief(run.plan.runbook, run.incident.id, shown_inputs)
        self.submit = run.submit_step or _one_at_a_time(run.call_step)
        self.flights: dict[Future[Mapping[str, Any]], _Flight] = {}
        self.groups: dict[str, _Group] = {}
        self.halted = False
        """Nothing new starts: a step failed (not `continue`), a gate stopped the run, an abort."""
        self.stopped = False
        """The run ends failed where it stands: a step failed, or a gate failed or was rejected."""
        self.failed: list[Step] = []
        """The steps whose failure stopped the run, in order: their rollbacks run at the end."""
        self.secrets = threading.Lock()
        """Held while a step's secret outputs widen the run's redactor, from the step's thread."""

    @property
    def flying(self) -> set[str]:
        """The ids of the steps in flight (a for_each step while any of its items is)."""
        return {flight.step.id for flight in self.flights.values()}

    def template_context(self) -> dict[str, Any]:
        run = self.run
        return {
            "inputs": run.inputs,
            "alert": run.incident.alert or {},
            "incident": {**run.incident.template_context(), "severity": self.severity},
            "steps": self.outputs,
        }

    def steered(self, item_id: str) -> bool:
        """Take in what responders recorded while the walk went on; False once they aborted.

        Another process (`runbook skip`, `/runbook abort`) may write to the ledger meanwhile: a
        step they skipped counts as skipped, a severity they set holds from the next step on.
        """
        progress = progress_from_records(read_records(self.run.evidence))
        self.aborted = progress.aborted
        self.severity = progress.severity or self.severity
        if progress.statuses.get(item_id) == ItemStatus.SKIPPED:
            self.statuses[item_id] = ItemStatus.SKIPPED
        return self.aborted is None

    def satisfied(self, item_id: str) -> bool:
        status = self.statuses.get(item_id)
        if status in DONE:
            return True
        item = self.run.plan.runbook.item(item_id)
        return (
            status == ItemStatus.FAILED
            and isinstance(item, Step)
            and item.spec.on_failure == "continue"
        )

    def record(
        self,
        event: Event,
        item: str | None,
        data: Mapping[str, Any],
        actor: str = "engine",
        durable: bool = True,
    ) -> Record:
        return self.run.ledger.record(event, step=item, actor=actor, data=data, durable=durable)


def _open_gate(walk: _Walk, gate: Gate) -> bool:
    """Reach, settle or ask at a gate; False when its timeout failed it or someone rejected it,
    which stops the run."""
    run = walk.run
    status = walk.statuses.get(gate.id)
    if status == ItemStatus.WAITING:
        status = _settle_timer(walk, gate)
    if status in DONE:
        return True
    rejection = walk.rejections.get(gate.id)
    if status == ItemStatus.FAILED and rejection is not None:
        # A failed gate, as a failed step would be: the steps after it never run.
        walk.error = walk.error or (
            f"gate {gate.id!r} was rejected by {rejection.by}: {rejection.reason}"
        )
        return False
    if status == ItemStatus.FAILED:
        limit = gate.policy.timeout_s if gate.policy is not None else None
        within = f" within {limit:g} s" if limit is not None else ""
        walk.error = walk.error or f"gate {gate.id!r} was not passed{within} (on_timeout: fail)"
        return False
    if status != ItemStatus.WAITING:
        # Reached: recorded before anyone is asked, so the wait is measured from here and no
        # answer can come before it (an answer for a gate not reached is refused).
        reached: dict[str, Any] = {"title": gate.title, "checklist": list(gate.items)}
        if gate.policy is not None:
            reached["policy"] = gate.policy.model_dump(mode="json", exclude_defaults=True)
        if run.roster is not None:
            reached["roster"] = run.roster.ref
        walk.record(Event.GATE_WAITING, gate.id, reached)
        walk.statuses[gate.id] = ItemStatus.WAITING
    answer = run.responder.ask(gate, run.incident.id)
    if answer is None:
        return True
    decision = answer_gate(
        run.ledger,
        gate,
        answer_identity(answer),
        incident=run.incident,
        roster=run.roster,
        note=answer.note,
        via=answer.via,
    )
    if decision.acknowledged:
        walk.statuses[gate.id] = ItemStatus.ACKNOWLEDGED
    if isinstance(run.responder, GateListener):
        run.responder.heard(gate, run.incident.id, decision.message)
    return True


def _settle_timer(walk: _Walk, gate: Gate) -> ItemStatus:
    """Do what the gate's timer made due while nobody walked the plan; the gate's status then.

    Without a server's clock this is where a gate past its timeout fails or continues (a
    clock may have done it already: the ledger says, and nothing happens twice).
    """
    run = walk.run
    if gate.policy is None or gate.policy.timeout_s is None:
        return ItemStatus.WAITING
    chat, runbook = run.chat, run.plan.runbook
    act_on_due(run.ledger, run.incident, runbook, run.roster, chat, now=utc_now(), gates=[gate])
    status = progress_from_records(read_records(run.evidence)).statuses.get(gate.id)
    walk.statuses[gate.id] = status or ItemStatus.WAITING
    return walk.statuses[gate.id]


@dataclass
class _Flight:
    """A step, or one item of a for_each step (`index`), running on the runner."""

    step: Step
    attempts: StepAttempts
    index: int | None = None


@dataclass
class _Group:
    """A for_each step while its items run: what each returned, or why it failed."""

    step: Step
    items: list[Any]
    shown: list[Any]
    """The items as the ledger shows them (secrets masked)."""
    outputs: dict[int, dict[str, Any]] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    running: int = 0


def _one_at_a_time(call: StepCall) -> StepSubmit:
    """A StepSubmit that runs each step through `call` before it returns: no two at once."""

    def submit(
        step: Step, name: str, act: Callable[[], Mapping[str, Any]]
    ) -> Future[Mapping[str, Any]]:
        done: Future[Mapping[str, Any]] = Future()
        try:
            done.set_result(call(step, act))
        except Exception as error:  # the walk reads it from the future, as from Prefect's
            done.set_exception(error)
        return done

    return submit


_NO_ITEM = object()


def _prepare(walk: _Walk, step: Step, action: Action, item: Any = _NO_ITEM) -> BaseModel:
    context = walk.template_context()
    if item is not _NO_ITEM:
        context["item"] = item
    rendered = render_arguments(
        step.spec.with_,
        context,
        where=f"step '{step.id}'",
        escapes=escapes_of(action.args),
        shown=lambda context: walk.run.redactor.redact(context)[0],
    )
    return action.args.model_validate(rendered)


def _start_step(walk: _Walk, step: Step) -> None:
    """Start one step (each item of a for_each step); a step skipped, or failing before it acts,
    is settled here and then."""
    run = walk.run
    spec = step.spec
    action = run.registry.get(spec.uses)
    if action is None:  # validation prevents this; kept as a clear failure, not a KeyError
        _failed(walk, step, f"unknown action {spec.uses!r}")
        return
    try:
        where = f"step '{step.id}'"
        if spec.if_ is not None and not evaluate(spec.if_, walk.template_context(), where=where):
            walk.record(Event.STEP_SKIPPED, step.id, {"reason": f"if: {spec.if_}"})
            walk.statuses[step.id] = ItemStatus.SKIPPED
            return
        if spec.for_each is not None:
            _start_items(walk, step, action)
            return
        args = _prepare(walk, step, action)
    except (TemplateFailure, ValidationError) as error:
        _failed(walk, step, describe(error))
        return

    # Not fsynced on its own: the step's outcome record, fsynced, carries it to disk.
    walk.record(
        Event.STEP_STARTED,
        step.id,
        {"uses": spec.uses, "title": step.title, "with": args.model_dump(mode="json")},
        durable=False,
    )
    _launch(walk, step, action, args)


def _start_items(walk: _Walk, step: Step, action: Action) -> None:
    """Start each unfinished item of a for_each step; an item that finished before is kept."""
    run, spec = walk.run, step.spec
    items = for_each_items(step, walk.template_context(), where=f"step '{step.id}'")
    shown = plain_json({"items": run.redactor.redact(items)[0]})["items"]
    before = walk.started_items.get(step.id)
    if before is not None and before != shown:
        # Finished items are known by their place in the list: in another list they would
        # stand for other hosts, and the ones that differ would never run.
        _failed(
            walk,
            step,
            f"for_each now gives other items than when the step started ({len(before)} then,"
            f" {len(shown)} now); skip the step or run a new incident",
        )
        return
    walk.record(
        Event.STEP_STARTED,
        step.id,
        {"uses": spec.uses, "title": step.title, "for_each": shown},
        durable=False,
    )
    walk.statuses[step.id] = ItemStatus.RUNNING
    group = walk.groups[step.id] = _Group(step, items, shown)
    for index, item in enumerate(items):
        name = item_id(step.id, index)
        if walk.statuses.get(name) == ItemStatus.SUCCEEDED:
            group.outputs[index] = dict(walk.item_outputs.get(name, {}))
            continue
        try:
            args = _prepare(walk, step, action, item)
        except (TemplateFailure, ValidationError) as error:
            _item_failed(walk, group, index, describe(error))
            continue
        walk.record(
            Event.STEP_STARTED,
            name,
            {
                "uses": spec.uses,
                "title": step.title,
                "item": shown[index],
                "with": args.model_dump(mode="json"),
            },
            durable=False,
        )
        group.running += 1
        _launch(walk, step, action, args, index)
    if group.running == 0:
        _finish_items(walk, group)


def _launch(
    walk: _Walk, step: Step, action: Action, args: BaseModel, index: int | None = None
) -> None:
    name = step.id if index is None else item_id(step.id, index)
    walk.statuses[name] = ItemStatus.RUNNING
    attempts = StepAttempts(walk, step, action, args, name)
    walk.flights[walk.submit(step, name, attempts)] = _Flight(step, attempts, index)


def _land(walk: _Walk, *, wait: bool) -> bool:
    """Take in every step that finished (waiting for the next one with `wait`); True if any."""
    if wait and walk.flights:
        wait_for(list(walk.flights), return_when=FIRST_COMPLETED)
    done = [future for future in walk.flights if future.done()]
    for future in done:
        _landed(walk, future, walk.flights.pop(future))
    return bool(done)


def _landed(walk: _Walk, future: Future[Mapping[str, Any]], flight: _Flight) -> None:
    attempts, step = flight.attempts, flight.step
    failure: str | None = None
    try:
        outputs = dict(future.result())
    except Exception as error:
        outputs = attempts.outputs or {}
        if attempts.outputs is None:
            failure = describe(error)
        # else: Prefect failed after the step had succeeded and was recorded
    if attempts.ledger_error is not None:
        raise attempts.ledger_error
    if flight.index is None:
        if failure is not None:
            _failed(walk, step, failure, attempts=attempts.count)
        else:
            walk.statuses[step.id] = ItemStatus.SUCCEEDED
            walk.outputs[step.id] = outputs
        return
    group = walk.groups[step.id]
    group.running -= 1
    if failure is not None:
        _item_failed(walk, group, flight.index, failure, attempts.count)
    else:
        walk.statuses[item_id(step.id, flight.index)] = ItemStatus.SUCCEEDED
        group.outputs[flight.index] = outputs
    if group.running == 0:
        _finish_items(walk, group)


def _item_failed(walk: _Walk, group: _Group, index: int, reason: str, attempts: int = 0) -> None:
    name = item_id(group.step.id, index)
    walk.record(
        Event.STEP_FAILED,
        name,
        {"error": reason, "attempts": attempts, "item": group.shown[index]},
    )
    walk.statuses[name] = ItemStatus.FAILED
    group.failures[index] = reason


def _finish_items(walk: _Walk, group: _Group) -> None:
    """Settle a for_each step once none of its items runs: failed if any item failed."""
    step = group.step
    del walk.groups[step.id]
    if group.failures:
        first = min(group.failures)
        count = f"{len(group.failures)} of {len(group.items)} items failed"
        _failed(
            walk, step, f"{count}; item {first} ({group.shown[first]}): {group.failures[first]}"
        )
        return
    walk.record(Event.STEP_SUCCEEDED, step.id, {"items": len(group.items)})
    walk.statuses[step.id] = ItemStatus.SUCCEEDED
    walk.outputs[step.id] = [group.outputs[index] for index in range(len(group.items))]


def _failed(walk: _Walk, step: Step, reason: str, attempts: int = 0) -> None:
    """Record a step's failure; unless it may `continue`, nothing new starts and the run stops
    once what runs has finished, after the step's rollback."""
    walk.record(
        Event.STEP_FAILED,
        step.id,
        {"error": reason, "attempts": attempts, "on_failure": step.spec.on_failure},
    )
    walk.statuses[step.id] = ItemStatus.FAILED
    walk.error = walk.error or f"step {step.id!r} failed: {reason}"
    if step.spec.on_failure != "continue":
        walk.halted = walk.stopped = True
        walk.failed.append(step)


def _runs_alone(item: Step | Gate) -> bool:
    """An item that does not declare `needs` (every gate) runs alone: it starts once everything
    started before it has finished, and nothing starts beside it; as before steps ran at once."""
    return not (isinstance(item, Step) and "needs" in item.spec.model_fields_set)


def _start_ready(walk: _Walk, todo: list[str]) -> bool:
    """Start, in plan order, each item of `todo` the plan lets start now; True when anything
    started or finished. An item whose needs can no longer be met leaves `todo` pending."""
    plan = walk.run.plan
    moved = False
    for item_id_ in list(todo):
        if walk.halted:
            break
        if walk.statuses.get(item_id_) in DONE:
            todo.remove(item_id_)
            continue
        item = plan.runbook.item(item_id_)
        alone = _runs_alone(item)
        if alone and walk.flights:
            break  # it waits for all that runs; nothing after it starts before it
        needs = plan.needs.get(item_id_, ())
        if walk.flying.intersection(needs) or not set(todo).isdisjoint(needs):
            continue  # what it needs has not finished yet: running, or not started
        todo.remove(item_id_)
        if not walk.steered(item_id_):
            walk.halted = True
            break
        if walk.statuses.get(item_id_) in DONE or not all(walk.satisfied(n) for n in needs):
            continue
        moved = True
        if isinstance(item, Gate):
            if not _open_gate(walk, item):
                walk.halted = walk.stopped = True
            continue
        _start_step(walk, item)
        _land(walk, wait=False)  # a StepCall has finished it already
        if alone and walk.flights:
            break
    return moved


def _walk_plan(walk: _Walk) -> None:
    """Run every item the plan allows, side by side where it allows; then the rollbacks of the
    steps whose failure stopped the run."""
    todo = list(walk.run.plan.order)
    while True:
        moved = False if walk.halted else _start_ready(walk, todo)
        if walk.flights:
            _land(walk, wait=True)
        elif not moved:
            break
    plan = walk.run.plan
    for target in dict.fromkeys(step.spec.on_failure for step in list(walk.failed)):
        rollback = plan.runbook.item(target) if target != "stop" else None
        if isinstance(rollback, Step):
            _start_step(walk, rollback)
            while walk.flights:
                _land(walk, wait=True)


def execute(run: Execution, *, resumed: bool = False) -> RunOutcome:
    """Walk the plan from the first unfinished item; return how the run ended."""
    walk = _Walk(run)
    plan = run.plan
    inputs, _ = run.redactor.redact(run.inputs)
    walk.record(
        Event.RUN_RESUMED if resumed else Event.RUN_STARTED,
        None,
        {
            "inputs": inputs,
            "drill": run.incident.drill,
            "title": plan.runbook.meta.title,
            # incident.json lives beside the ledger: its facts go into the chain to be checked.
            "incident": incident_facts(run.incident.model_dump(mode="json")),
        },
    )
    _walk_plan(walk)

    steps = {item_id: walk.statuses.get(item_id, ItemStatus.PENDING) for item_id in plan.order}
    steps.update({r: walk.statuses[r] for r in sorted(plan.rollbacks) if r in walk.statuses})
    if walk.aborted is not None:
        status = RunStatus.FAILED
        walk.error = f"aborted by {walk.aborted.by}: {walk.aborted.reason}"
    elif walk.stopped:
        status = RunStatus.FAILED
    elif all(walk.satisfied(item_id) for item_id in plan.order):
        status = RunStatus.SUCCEEDED
    else:
        status = RunStatus.WAITING
    # An aborted incident waits for nobody: its gates will never be passed.
    waiting = [i for i, s in steps.items() if s == ItemStatus.WAITING and walk.aborted is None]
    finished: dict[str, Any] = {"status": status, "steps": steps, "waiting": waiting}
    if walk.aborted is not None:
        finished["aborted"] = {"by": walk.aborted.by, "reason": walk.aborted.reason}
    walk.record(Event.RUN_FINISHED, None, finished)
    return RunOutcome(
        incident=run.incident.id,
        runbook=plan.runbook.id,
        status=status,
        steps=steps,
        evidence=run.evidence,
        error=walk.error if status is RunStatus.FAILED else None,
    )
