"""Gate timeouts settled by a resume, through real Prefect runs: with no server's clock, `runbook
resume` fails or continues a gate past its timeout before the run goes on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flows.engine.authority import Outcome
from flows.engine.runner import acknowledge_gate, resume_run, start_run
from flows.engine.settings import Settings
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import slack_identity
from tests.flows.engine.timed_gates import write_library

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(autouse=True)
def _no_roster_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ROSTER", raising=False)


def waited_past_timeout(settings: Settings, path: Path, incident: str) -> None:
    """Start the incident, see it wait at its 1 s gate, and let the second pass."""
    outcome = start_run(settings, path, {}, incident_id=incident)
    assert outcome.status == "waiting" and outcome.steps["contain"] == "waiting"
    time.sleep(1.1)


def test_a_fail_timeout_ends_the_resumed_run_failed(home: Path, tmp_path: Path) -> None:
    """Resumed past its timeout, a `fail` gate is recorded as timed out and fails the run there:
    the steps after it never run, and a late approval is refused."""
    settings = Settings(home=home, prefect="external")
    path = write_library(tmp_path / "library", "fail", timeout_s=1)
    waited_past_timeout(settings, path, "inc-fail")

    outcome = resume_run(settings, "inc-fail")

    assert outcome.status == "failed"
    assert outcome.steps == {"note": "succeeded", "contain": "failed", "close": "pending"}
    assert outcome.error == "gate 'contain' was not passed within 1 s (on_timeout: fail)"
    records = read_records(home / "incidents" / "inc-fail")
    (timed_out,) = [r for r in records if r.event == "gate.timed_out"]
    assert timed_out.data["outcome"] == "failed" and timed_out.data["waited_s"] >= 1
    assert not [r for r in records if r.step == "close"]
    assert [r.data["status"] for r in records if r.event == "run.finished"] == [
        "waiting",
        "failed",
    ]
    late = acknowledge_gate(settings, "inc-fail", "contain", slack_identity("U0SAM", "sam"))
    assert late.outcome is Outcome.REFUSED and "timed out" in late.reason
    again = resume_run(settings, "inc-fail")
    assert again.status == "failed" and again.steps["close"] == "pending"
    assert verify_ledger(home / "incidents" / "inc-fail").ok


def test_a_continue_timeout_lets_the_resumed_run_go_on(home: Path, tmp_path: Path) -> None:
    """Resumed past its timeout, a `continue` gate passes as continued, nobody's approval, and
    the run goes on to the end."""
    settings = Settings(home=home, prefect="external")
    path = write_library(tmp_path / "library", "continue", timeout_s=1)
    waited_past_timeout(settings, path, "inc-continue")

    outcome = resume_run(settings, "inc-continue")

    assert outcome.status == "succeeded"
    assert outcome.steps == {"note": "succeeded", "contain": "continued", "close": "succeeded"}
    records = read_records(home / "incidents" / "inc-continue")
    (timed_out,) = [r for r in records if r.event == "gate.timed_out"]
    assert timed_out.data["outcome"] == "continued" and timed_out.actor == "engine"
    assert not [r for r in records if r.event == "gate.acknowledged"]
