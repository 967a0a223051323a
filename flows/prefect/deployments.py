"""The scale-out path: runbooks as Prefect deployments run by Prefect workers on other machines.

One importable flow, `run_runbook`, is deployed once per runbook (the deployment is named after
the runbook and carries its path as a default parameter). Workers re-import it from this file's
entrypoint and run the engine there. Submissions carry an idempotency key built from the
incident and the job, which Prefect's database enforces: a retried submission never starts a
second flow run. `flow_runs` sees each submission through to its end.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from prefect import Flow, flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

from flows.drills.drill import resume_incident
from flows.engine.runner import start_run
from flows.engine.settings import load_settings
from flows.evidence.incident import INCIDENT_FILE, Trigger, incident_folder
from flows.prefect.flow_runs import PrefectClients, prefect_clients, submit_flow_run

FLOW_NAME = "run-runbook"
ENTRYPOINT = "flows/prefect/deployments.py:run_runbook"


@flow(name=FLOW_NAME, persist_result=False, validate_parameters=False)
def run_runbook(
    runbook: str,
    incident: str,
    inputs: dict[str, Any] | None = None,
    alert: dict[str, Any] | None = None,
    kind: str = "start",
    trigger: str = "alert",
    started_by: str | None = None,
) -> dict[str, Any]:
    """Start (or resume) one incident of one runbook on this worker; return the outcome.

    A resume of an incident that was never opened (its first flow run crashed before the
    runbook started) starts it, from the start's parameters the resume carries.
    """
    settings = load_settings()
    opened = (incident_folder(settings.incidents_dir, incident) / INCIDENT_FILE).exists()
    if kind == "resume" and opened:
        outcome = resume_incident(settings, incident, inputs or None)
    else:
        outcome = start_run(
            settings,
            Path(runbook),
            inputs or {},
            incident_id=incident,
            alert=alert,
            trigger=Trigger(trigger),
            started_by=started_by,
        )
    return outcome.to_json()


def ensure_process_pool(name: str) -> None:
    """Create a process work pool with this name unless it exists."""

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def deploy_runbook(runbook_id: str, path: Path, sha256: str, pool: str, root: Path) -> str:
    """Create or update the deployment of one runbook; return its `flow/deployment` name."""
    source = flow.from_source(source=str(root.resolve()), entrypoint=ENTRYPOINT)
    assert isinstance(source, Flow)  # called outside an event loop, Prefect answers in kind
    source.deploy(
        name=runbook_id,
        work_pool_name=pool,
        build=False,
        push=False,
        parameters={"runbook": str(path.resolve().relative_to(root.resolve()))},
        version=sha256[:12],
        tags=[f"runbook:{runbook_id}"],
        print_next_steps=False,
    )
    return deployment_name(runbook_id)


def deployment_name(runbook_id: str) -> str:
    """The `flow/deployment` name `runbook deploy` gives a runbook's deployment."""
    return f"{FLOW_NAME}/{runbook_id}"


def submit(
    runbook_id: str,
    incident: str,
    key: str,
    parameters: dict[str, Any],
    *,
    clients: PrefectClients = prefect_clients,
) -> str:
    """Queue a run of the runbook's deployment (once per `key`); return the flow run id."""
    return submit_flow_run(
        deployment_name(runbook_id), key, {"incident": incident, **parameters}, clients=clients
    )
