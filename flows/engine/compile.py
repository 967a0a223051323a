"""Compile a checked plan into a real Prefect flow: one flow per runbook, one task per step.

Prefect has no graph-building API, so the flow is an ordinary function that walks the plan
(`execute.py`) and submits every step to a task made with the step's own name and retries, on
Prefect's thread pool (`STEP_WORKERS` at once): steps the runbook lets run side by side do, and
each item of a `for_each` step is a task run of its own (`scan[0]`, `scan[1]`, ...).
Prefect sees inputs with secrets already redacted; the real values stay in this process.

A step's `timeout_s` is not Prefect's `timeout_seconds`: a sync task's timeout is an exception
raised inside it (by SIGALRM on the main thread, injected off it), which cannot interrupt the
blocking call that is the reason for a timeout and lands at any instruction. The engine ends each
attempt at its deadline itself (`execute.py`, `timeouts.py`), the same way in every thread.

An incident is one flow run, whatever number of times it runs: the first run creates it, tagged
`incident:<id>` (and named after the incident), and every resume finds it by that tag and runs
on it again, so Prefect's UI shows one flow run per incident with its whole history. The flow
returns the state that says how the walk ended (`final_state`): Completed, Failed with the
engine's error, or a Paused state named "Waiting at gate".

The flow is synchronous and runs with Prefect's flow heartbeat off. A sync run otherwise waits
about a second at its end for the heartbeat thread, and an async flow driven by `asyncio.run`
leaks Prefect's pooled connections on every new event loop. Crash recovery does not depend on
heartbeats here: the ledger says which step a killed run reached, and `runbook resume` continues.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from prefect import Flow, Task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, State
from prefect.client.schemas.sorting import FlowRunSort
from prefect.context import (
    FlowRunContext,
    SettingsContext,
    SyncClientContext,
    get_settings_context,
)
from prefect.flow_engine import run_flow as run_flow_run
from prefect.futures import PrefectFuture
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, Settings
from prefect.states import Completed, Failed, Paused, Pending
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.engine.execute import Execution, RunOutcome, StepSubmit, execute
from flows.evidence.progress import ItemStatus, RunStatus
from flows.runbook.model import Step

WAITING_AT_GATE = "Waiting at gate"
"""The name of the Paused state a run stopped at a gate ends in."""

# Settings without the heartbeat, per settings object they were derived from (kept alive
# beside it, so its id is not reused): deriving them validates every Prefect setting again,
# 35-55 ms, which a server worker would otherwise pay on every incident.
_WITHOUT_HEARTBEAT: dict[int, tuple[Settings, Settings]] = {}


@contextmanager
def heartbeat_off() -> Iterator[None]:
    """Run what is inside with Prefect's flow heartbeat off (see the module docstring)."""
    context = get_settings_context()
    base = context.settings
    cached = _WITHOUT_HEARTBEAT.get(id(base))
    if cached is None or cached[0] is not base:
        if len(_WITHOUT_HEARTBEAT) >= 8:
            _WITHOUT_HEARTBEAT.clear()
        quiet = base.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
        cached = _WITHOUT_HEARTBEAT[id(base)] = (base, quiet)
    with SettingsContext(profile=context.profile, settings=cached[1]):
        yield


STEP_WORKERS = 4
"""How many steps (and for_each items) of one incident run at once on Prefect's thread pool."""


def _invoke(act: Callable[[], Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    # `name` is only the task run's name: the step's id, or one for_each item's (`scan[0]`).
    return act()


@functools.lru_cache(maxsize=1024)
def _task_for(runbook_id: str, step_id: str, retries: int, delay: float) -> Task:
    # Building a Prefect Task costs milliseconds (it inspects and hashes its function); a step's
    # task is the same for every run, so it is built once per process and reused. No tags: a
    # tagged task asks the API for tag concurrency slots on every run (one more request a step),
    # and the flow (the runbook) and task (the step) names already say what ran.
    return Task(
        fn=_invoke,
        name=step_id,
        task_run_name="{name}",
        retries=retries,
        retry_delay_seconds=delay,
        cache_policy=NO_CACHE,
        persist_result=False,
    )


def step_task(runbook_id: str, step: Step) -> Task:
    """The Prefect task for one step, named after it and carrying its retries.

    Its parameters are the step's action thunk and the task run's name: Prefect never stores
    task parameters (results are not persisted), so rendered arguments and secrets stay in
    this process.
    """
    spec = step.spec
    return _task_for(runbook_id, step.id, spec.retries, spec.retry_delay_s)


def _submit_as_task(runbook_id: str) -> StepSubmit:
    def submit(
        step: Step, name: str, act: Callable[[], Mapping[str, Any]]
    ) -> Future[Mapping[str, Any]]:
        landed: Future[Mapping[str, Any]] = Future()

        def settle(done: PrefectFuture[Any]) -> None:
            # Called once the task run is over: its outputs, or the error of its last attempt.
            try:
                landed.set_result(cast(Mapping[str, Any], done.result()))
            except BaseException as error:  # handed to the walk, which reads the future
                landed.set_exception(error)

        step_task(runbook_id, step).submit(act, name).add_done_callback(settle)
        return landed

    return submit


def incident_tag(incident: str) -> str:
    """The tag that marks an incident's flow run in Prefect: how a resume finds it."""
    return f"incident:{incident}"


def final_state(outcome: RunOutcome, error: str | None = None) -> State:
    """The state the incident's flow run ends in, saying what the walk's outcome says.

    A run stopped at a gate ends Paused (named "Waiting at gate"), not Completed: it is not
    finished, and Prefect's API (`is_final()` false) and UI (a Paused badge) then say so, where
    a Completed state would count it among the runs that finished well. Prefect accepts a
    Paused state as a flow's return without a deployment when it does not ask to be
    rescheduled, and lets the same flow run go Running again when `runbook resume` runs it.
    Prefect's own Resume button cannot continue it (no process waits for it): the gate is
    answered in the engine (`runbook ack`, Slack) and the incident resumed.
    """
    data = outcome.to_json()
    if outcome.status is RunStatus.SUCCEEDED:
        return Completed(message="every step and gate finished", data=data)
    if outcome.status is RunStatus.FAILED:
        return Failed(message=error or outcome.error or "the run failed", data=data)
    waiting = [item for item, status in outcome.steps.items() if status == ItemStatus.WAITING]
    return Paused(
        name=WAITING_AT_GATE,
        message=f"waiting at {', '.join(waiting) or 'a gate'}: answer it, then "
        f"`runbook resume {outcome.incident}`",
        data=data,
    )


@dataclass
class WalkEnding:
    """How the walk inside a flow run ended, kept for the caller whatever Prefect's state."""

    outcome: RunOutcome | None = None
    error: Exception | None = None
    """What stopped the walk itself (the ledger refused a record, say): raised to the caller."""


def compile_runbook(
    run: Execution, *, resumed: bool = False, ending: WalkEnding | None = None
) -> Flow:
    """The Prefect flow that runs this incident's plan; call it with the redacted inputs.

    Its run ends in the state `final_state` gives; `ending` receives the walk's outcome (or the
    error that stopped it), which a Paused or Failed state does not hand back as a result.
    """
    runbook = run.plan.runbook
    run.submit_step = _submit_as_task(runbook.id)
    ending = ending if ending is not None else WalkEnding()

    def run_runbook(incident: str, inputs: dict[str, Any]) -> State:
        # `inputs` is only what Prefect records as parameters; the walk uses run.inputs.
        try:
            outcome = execute(run, resumed=resumed)
        except Exception as error:  # raised again by run_flow, after Prefect recorded it
            ending.error = error
            shown, _ = run.redactor.redact(f"the engine stopped: {error}")
            return Failed(message=shown)
        ending.outcome = outcome
        publish_evidence(outcome)
        return final_state(
            outcome, run.redactor.redact(outcome.error)[0] if outcome.error else None
        )

    return Flow(
        fn=run_runbook,
        name=runbook.id,
        flow_run_name=run.incident.id,
        version=f"v{runbook.meta.version}-{runbook.sha256[:12]}",
        description=runbook.meta.title,
        persist_result=False,
        validate_parameters=False,
        # Prefect types the parameter over the base future; the pool's futures are a subtype.
        task_runner=cast(TaskRunner[PrefectFuture[Any]], ThreadPoolTaskRunner(STEP_WORKERS)),
    )


def incident_flow_run(
    client: SyncPrefectClient, flow: Flow, incident: str, parameters: dict[str, Any]
) -> FlowRun:
    """The incident's flow run: the one tagged with its id, or a new one, named and tagged."""
    found = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[flow.name])),
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[incident_tag(incident)])),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        limit=1,
    )
    if found:
        return found[0]
    # Created here rather than by calling the flow: Prefect would otherwise take the tag from a
    # `tags()` context, which also tags every task run, and each tagged task run asks the API
    # for concurrency slots.
    return client.create_flow_run(
        flow,
        name=incident,
        parameters=flow.serialize_parameters(parameters),
        tags=[incident_tag(incident)],
        state=Pending(),
    )


def artifact_key(incident: str, suffix: str) -> str:
    """A Prefect artifact key for an incident: lowercase letters, digits and dashes only."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", incident.lower()).strip("-")
    return f"{cleaned}-{suffix}"


def publish_evidence(outcome: RunOutcome) -> None:
    """Show the run's evidence on Prefect's Artifacts page: a table of steps, a link to it."""
    # Sent one after the other: the local server handles one write at a time, so sending both
    # at once saves nothing.
    create_table_artifact(
        key=artifact_key(outcome.incident, "steps"),
        table=[{"item": item, "status": status} for item, status in outcome.steps.items()],
        description=f"Steps and gates of incident {outcome.incident} ({outcome.status})",
    )
    create_link_artifact(
        key=artifact_key(outcome.incident, "evidence"),
        link=outcome.evidence.resolve().as_uri(),
        link_text=f"evidence of {outcome.incident}",
        description="The hash-chained ledger; `runbook evidence export` makes the bundle.",
    )


def _link_bundle(incident: str, bundle: str) -> None:
    create_link_artifact(
        key=artifact_key(incident, "evidence"),
        link=Path(bundle).resolve().as_uri(),
        link_text=f"evidence bundle of {incident}",
        description="Made by `runbook evidence export`; check it with `runbook evidence verify`.",
    )


def publish_bundle(incident: str, bundle: Path) -> None:
    """Record the export as a small flow run whose artifact links the incident to its bundle."""
    flow = Flow(fn=_link_bundle, name="evidence-export", flow_run_name=f"{incident}-export")
    with heartbeat_off():
        flow(incident=incident, bundle=str(bundle))


def _tag_parent(client: SyncPrefectClient, incident: str) -> None:
    """Tag the flow run this one is started from (a deployment's `run-runbook` on a worker) with
    the incident, so Prefect lists it beside the incident's own flow run."""
    parent = FlowRunContext.get()
    if parent is None or parent.flow_run is None:
        return
    tags = list(parent.flow_run.tags)
    if incident_tag(incident) not in tags:
        client.update_flow_run(parent.flow_run.id, tags=[*tags, incident_tag(incident)])


def run_flow(run: Execution, *, resumed: bool = False) -> RunOutcome:
    """Run the incident's flow run in this process (a new one, or the one a resume continues),
    returning the walk's outcome; an error that stopped the walk is raised here."""
    ending = WalkEnding()
    flow = compile_runbook(run, resumed=resumed, ending=ending)
    redacted, _ = run.redactor.redact(run.inputs)
    parameters = {"incident": run.incident.id, "inputs": redacted}
    with heartbeat_off(), SyncClientContext.get_or_create() as context:
        flow_run = incident_flow_run(context.client, flow, run.incident.id, parameters)
        _tag_parent(context.client, run.incident.id)
        state = cast(
            State,
            run_flow_run(flow, flow_run=flow_run, parameters=parameters, return_type="state"),
        )
    if ending.error is not None:
        raise ending.error
    if ending.outcome is None:
        raise RuntimeError(f"the Prefect flow run ended {state.type.value}: {state.message}")
    return ending.outcome
