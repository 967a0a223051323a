"""The shipped runbook library: valid, and each runbook runs end to end on the local backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.contract.ports import GateAnswer
from flows.engine.registry import default_registry
from flows.engine.runner import start_run
from flows.engine.settings import Settings
from flows.evidence.verify import verify_ledger
from flows.runbook.model import Gate
from flows.runbook.validate import validate_paths
from integrations.jira.local import LocalTicketStore
from tests.support import PROJECT

LIBRARY = PROJECT / "runbooks"

INPUTS = {
    "breach/credential-leak.md": {"service": "api", "detected_by": "secret scanner"},
    "model-failure/model-degradation.md": {"model": "fraud-scorer", "signal": "accuracy"},
    "outage/service-outage.md": {"service": "checkout"},
}


class Everyone:
    """Acknowledges every gate as the incident commander."""

    def ask(self, gate: Gate, incident: str) -> GateAnswer:
        return GateAnswer(by="ic-on-call", note=f"done: {gate.title}", via="test")


def test_library_validates_with_no_problems() -> None:
    """Every runbook in runbooks/ passes validation."""
    runbooks, problems = validate_paths([LIBRARY], default_registry())
    assert [str(p) for p in problems] == []
    assert {r.id for r in runbooks} == {"credential-leak", "model-degradation", "service-outage"}


def test_every_library_runbook_has_steps_gates_and_soc2_criteria() -> None:
    """Each shipped runbook automates steps, has manual gates and names SOC 2 criteria."""
    runbooks, _ = validate_paths([LIBRARY], default_registry())
    for runbook in runbooks:
        assert len(runbook.steps) >= 3, runbook.id
        assert runbook.gates, runbook.id
        assert runbook.meta.soc2, runbook.id


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("document", sorted(INPUTS))
def test_library_runbook_runs_to_success(document: str, home: Path) -> None:
    """A library runbook runs through Prefect to success with every gate acknowledged."""
    settings = Settings(home=home, prefect="external")
    outcome = start_run(settings, LIBRARY / document, INPUTS[document], responder=Everyone())
    assert outcome.status == "succeeded", outcome
    assert "failed" not in outcome.steps.values()
    assert verify_ledger(outcome.evidence).ok
    tickets = LocalTicketStore(home / "tickets.db").list_tickets()
    assert len(tickets) == 1
    assert tickets[0].incident == outcome.incident
