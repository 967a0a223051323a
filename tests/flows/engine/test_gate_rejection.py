"""Rejecting a gate: judged by the rules an acknowledgement is, recorded as `gate.rejected` with
its reason, and the run ends failed there, as at a failed step."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.engine.authority import Outcome
from flows.engine.runner import acknowledge_gate, resume_run
from flows.evidence.records import Event
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import slack_identity
from tests.flows.engine.test_approvals import (
    gate_records,
    library,
    settings_for,
    waiting_at_contain,
)

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


def test_an_approvers_rejection_fails_the_gate_and_ends_the_run_failed(
    home: Path, tmp_path: Path
) -> None:
    """An approver's rejection is `gate.rejected` with who and why; the resume ends the run
    failed at the gate with that reason, the steps after it never run, and later answers are
    refused."""
    settings = settings_for(home)
    path = library(tmp_path, "approvers: {roles: [security]}\nmin_approvals: 2")
    waiting_at_contain(settings, path, "inc-reject")
    bea = slack_identity("U0BEA", "bea")
    decision = acknowledge_gate(
        settings, "inc-reject", "contain", bea, "keys still live", reject=True
    )
    assert decision.outcome is Outcome.REJECTED
    rejected = gate_records(home, "inc-reject")[-1]
    assert (rejected.event, rejected.actor) == (Event.GATE_REJECTED, "bea")
    assert {k: rejected.data[k] for k in ("reason", "identity", "channel", "authority")} == {
        "reason": "keys still live",
        "identity": "slack:U0BEA",
        "channel": "slack",
        "authority": "role:security",
    }

    outcome = resume_run(settings, "inc-reject")
    assert outcome.status == "failed"
    assert outcome.steps["contain"] == "failed" and outcome.steps["close"] == "pending"
    assert outcome.error == "gate 'contain' was rejected by bea: keys still live"
    late = acknowledge_gate(settings, "inc-reject", "contain", bea)
    assert late.outcome is Outcome.REFUSED and "was rejected by bea" in late.reason
    records = read_records(home / "incidents" / "inc-reject")
    assert not any(r.step == "close" for r in records)
    assert verify_ledger(home / "incidents" / "inc-reject").ok


def test_a_rejection_by_someone_who_may_not_pass_the_gate_is_refused(
    home: Path, tmp_path: Path
) -> None:
    """Who may not acknowledge a gate may not reject it either: the attempt is `gate.refused`
    (saying it was a rejection) and the gate still waits for its approvers."""
    settings = settings_for(home)
    path = library(tmp_path, "approvers: {roles: [security]}")
    waiting_at_contain(settings, path, "inc-no-veto")
    sol = slack_identity("U0SOL", "sol")
    decision = acknowledge_gate(settings, "inc-no-veto", "contain", sol, "nope", reject=True)
    assert decision.outcome is Outcome.REFUSED
    refused = gate_records(home, "inc-no-veto")[-1]
    assert (refused.event, refused.data["answer"]) == (Event.GATE_REFUSED, "reject")
    assert "may not pass this gate" in refused.data["reason"]
    assert resume_run(settings, "inc-no-veto").steps["contain"] == "waiting"
