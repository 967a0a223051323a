"""Compile a checked plan into a real Prefect flow: one flow per runbook, one task per step.

Prefect has no graph-building API, so the flow is an ordinary function that walks the plan
(`execute.py`) and dispatches every step to a task made with the step's own name and retries.
Prefect sees inputs with secrets already redacted; the real values stay in this process.

A step's `timeout_s` is not Prefect's `timeout_seconds`: a sync task's timeout is an exception
raised inside it (by SIGALRM on the main thread, injected off it), which cannot interrupt the
blocking call that is the reason for a timeout and lands at any instruction. The engine ends each
attempt at its deadline itself (`execute.py`, `timeouts.py`), the same way in every thread.

The flow is synchronous and runs with Prefect's flow heartbeat off. A sync run otherwise waits
about a second at its end for the heartbeat thread, and an async flow driven by `asyncio.run`
leaks Prefect's pooled connections on every new event loop. Crash recovery does not depend on
heartbeats here: the ledger says which step a killed run reached, and `runbook resume` continues.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from prefect import Flow, Task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.context import SettingsContext, get_settings_context
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, Settings

from flows.engine.execute import Execution, RunOutcome, execute
from flows.evidence.progress import ItemStatus, RunStatus
from flows.runbook.model import Step

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


def _invoke(act: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
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
        task_run_name=step_id,
        retries=retries,
        retry_delay_seconds=delay,
        cache_policy=NO_CACHE,
        persist_result=False,
    )


def step_task(runbook_id: str, step: Step) -> Task:
    """The Prefect task for one step, named after it and carrying its retries.

    Its one parameter is the step's action thunk: Prefect never stores task parameters
    (results are not persisted), so rendered arguments and secrets stay in this process.
    """
    spec = step.spec
    return _task_for(runbook_id, step.id, spec.retries, spec.retry_delay_s)


def _call_as_task(runbook_id: str) -> Callable[[Step, Callable[[], Mapping[str, Any]]], Any]:
    def call(step: Step, act: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
        # A sync task called in a sync flow returns its result, not a coroutine.
        return cast(Mapping[str, Any], step_task(runbook_id, step)(act))

    return call


def compile_runbook(run: Execution, *, resumed: bool = False) -> Flow:
    """The Prefect flow that runs this incident's plan; call it with the redacted inputs."""
    runbook = run.plan.runbook
    run.call_step = _call_as_task(runbook.id)

    def run_runbook(incident: str, inputs: dict[str, Any]) -> dict[str, Any]:
        # `inputs` is only what Prefect records as parameters; the walk uses run.inputs.
        outcome = execute(run, resumed=resumed)
        publish_evidence(outcome)
        return outcome.to_json()

    return Flow(
        fn=run_runbook,
        name=runbook.id,
        flow_run_name=f"{run.incident.id}{'-resume' if resumed else ''}",
        version=f"v{runbook.meta.version}-{runbook.sha256[:12]}",
        description=runbook.meta.title,
        persist_result=False,
        validate_parameters=False,
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


def run_flow(run: Execution, *, resumed: bool = False) -> RunOutcome:
    """Compile and run the flow in this process, returning the walk's outcome."""
    flow = compile_runbook(run, resumed=resumed)
    redacted, _ = run.redactor.redact(run.inputs)
    with heartbeat_off():
        state = cast(State, flow(incident=run.incident.id, inputs=redacted, return_state=True))
    result = state.result(raise_on_failure=False)
    if isinstance(result, dict) and "status" in result:
        return RunOutcome(
            incident=result["incident"],
            runbook=result["runbook"],
            status=RunStatus(result["status"]),
            steps={item: ItemStatus(status) for item, status in result["steps"].items()},
            evidence=run.evidence,
            error=result.get("error"),
        )
    raise RuntimeError(f"the Prefect flow run ended {state.type.value}: {state.message}")
