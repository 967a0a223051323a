"""The scale-out path: runbooks deployed to Prefect, submissions idempotent per incident."""

from __future__ import annotations

import pytest

from flows.prefect.deployments import FLOW_NAME, deploy_runbook, ensure_process_pool, submit
from flows.runbook.parse import parse_runbook
from tests.support import FIXTURES, PROJECT

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_deploy_then_submit_twice_with_one_key_makes_one_flow_run() -> None:
    """A retried submission (same idempotency key) returns the flow run already created."""
    runbook = parse_runbook(FIXTURES / "library" / "disk-full.md")
    ensure_process_pool("test-runbooks")
    ensure_process_pool("test-runbooks")  # a second call finds the pool and keeps it
    name = deploy_runbook(runbook.id, runbook.path, runbook.sha256, "test-runbooks", PROJECT)
    assert name == f"{FLOW_NAME}/disk-full"
    first = submit(runbook.id, "inc-deploy-1", "inc-deploy-1:start:1", {"inputs": {"host": "a"}})
    again = submit(runbook.id, "inc-deploy-1", "inc-deploy-1:start:1", {"inputs": {"host": "a"}})
    other = submit(runbook.id, "inc-deploy-2", "inc-deploy-2:start:2", {"inputs": {"host": "b"}})
    assert first == again
    assert other != first
