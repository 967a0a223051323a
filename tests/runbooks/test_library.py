"""The shipped runbook library: valid, and each runbook runs end to end on the local backends."""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

import pytest

from flows.engine.registry import default_registry
from flows.engine.runner import start_run
from flows.engine.settings import Settings
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.roster import load_roster
from flows.runbook.validate import validate_paths
from integrations.jira.local import LocalTicketStore
from tests.support import PROJECT, RosterResponder, run_cli

LIBRARY = PROJECT / "runbooks"

INPUTS = {
    "breach/credential-leak.md": {"service": "api", "detected_by": "secret scanner"},
    "model-failure/model-degradation.md": {"model": "fraud-scorer", "signal": "accuracy"},
    "outage/service-outage.md": {"service": "checkout"},
}


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
    """A library runbook runs through Prefect to success, every gate acknowledged by someone
    the roster and the gate's policy allow."""
    settings = Settings(home=home, prefect="external")
    outcome = start_run(settings, LIBRARY / document, INPUTS[document], responder=RosterResponder())
    assert outcome.status == "succeeded", outcome
    refused = [
        r.data["reason"] for r in read_records(outcome.evidence) if r.event == "gate.refused"
    ]
    assert refused == []
    assert "failed" not in outcome.steps.values()
    assert verify_ledger(outcome.evidence).ok
    tickets = LocalTicketStore(home / "tickets.db").list_tickets()
    assert len(tickets) == 1
    assert tickets[0].incident == outcome.incident


@pytest.mark.usefixtures("prefect_api")
def test_the_readme_outage_walkthrough_works_for_any_account(home: Path) -> None:
    """`runbook run` of the outage runbook, then `ack` and `resume` at each gate, succeeds for
    any OS account, listed in the shipped roster or not; each ack records that account."""
    run = run_cli(home, "run", "runbooks/outage/service-outage.md", "--input", "service=checkout")
    assert run.returncode == 3, run.stderr
    incident = next(
        line.split()[1] for line in run.stdout.splitlines() if line.startswith("incident")
    )
    for gate in ("assess", "mitigate", "verify", "follow-up"):
        acked = run_cli(home, "ack", incident, gate, "--note", f"{gate} done")
        assert acked.returncode == 0, acked.stderr
        resumed = run_cli(home, "resume", incident)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    acks = [
        r for r in read_records(home / "incidents" / incident) if r.event == "gate.acknowledged"
    ]
    account = f"{getpass.getuser()}@{socket.gethostname()}"
    person = load_roster(LIBRARY / "responders.yaml").person_of_os_user(getpass.getuser())
    assert {(r.actor, r.data["identity"], r.data["authority"]) for r in acks} == {
        (person or account, account, "anyone")
    }
