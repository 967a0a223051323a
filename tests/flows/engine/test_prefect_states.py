"""Prefect shows how each incident stands: one flow run per incident, in the state the run ended."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun, StateType

from flows.engine.compile import WAITING_AT_GATE, incident_tag
from flows.engine.runner import acknowledge_gate, resume_run, start_run
from flows.engine.settings import Settings
from flows.evidence.verify import verify_ledger
from flows.runbook.identity import named_identity
from tests.support import FIXTURES

pytestmark = pytest.mark.usefixtures("prefect_api")

GATED = FIXTURES / "runbooks" / "gated.md"


def settings_for(home: Path) -> Settings:
    return Settings(home=home, prefect="external")


def flow_runs_of(incident: str) -> list[FlowRun]:
    """Every flow run Prefect holds for the incident, found by its tag."""
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[incident_tag(incident)]))
        )


def history(flow_run: FlowRun) -> list[tuple[str, str]]:
    """The flow run's states, oldest first, as (type, name)."""
    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(flow_run.id)
    return [(state.type.value, state.name or "") for state in states]


def failing_runbook(tmp_path: Path) -> Path:
    path = tmp_path / "breaks.md"
    path.write_text(
        "---\nid: breaks\ntitle: breaks test\nkind: other\nseverity: sev3\nversion: 1\n"
        'owner: "#t"\n---\n# Breaks\n```step\nid: change\nuses: shell.run\n'
        "with:\n  argv: ['false']\n```\n"
    )
    return path


def test_a_failed_incident_is_failed_in_prefect_with_the_engine_error(
    home: Path, tmp_path: Path
) -> None:
    """A run that fails ends its flow run Failed, with the engine's error as the message."""
    outcome = start_run(settings_for(home), failing_runbook(tmp_path), {}, incident_id="inc-st-f")
    assert outcome.status == "failed" and outcome.error
    [flow_run] = flow_runs_of("inc-st-f")
    assert flow_run.name == "inc-st-f"
    assert flow_run.state is not None and flow_run.state.type is StateType.FAILED
    assert flow_run.state.message == outcome.error


def test_an_incident_waiting_at_a_gate_is_paused_in_prefect(home: Path) -> None:
    """A run stopped at a gate ends its flow run Paused, named "Waiting at gate", not Completed."""
    outcome = start_run(settings_for(home), GATED, {"service": "api"}, incident_id="inc-st-w")
    assert outcome.status == "waiting"
    [flow_run] = flow_runs_of("inc-st-w")
    state = flow_run.state
    assert state is not None and state.type is StateType.PAUSED
    assert state.name == WAITING_AT_GATE == "Waiting at gate"
    assert "contain" in (state.message or "")
    assert not state.is_final()


def test_a_resume_after_an_ack_continues_the_same_flow_run_to_completed(home: Path) -> None:
    """Acknowledge and resume: the incident keeps one flow run, Paused, then Running, then
    Completed; a resume never starts a second one."""
    settings = settings_for(home)
    start_run(settings, GATED, {"service": "api"}, incident_id="inc-st-r")
    [first] = flow_runs_of("inc-st-r")
    acknowledge_gate(settings, "inc-st-r", "contain", named_identity("alice"), "failed over")
    assert resume_run(settings, "inc-st-r").status == "succeeded"
    [again] = flow_runs_of("inc-st-r")
    assert again.id == first.id and again.name == "inc-st-r"
    assert again.state is not None and again.state.type is StateType.COMPLETED
    assert history(again)[-4:] == [
        ("RUNNING", "Running"),
        ("PAUSED", WAITING_AT_GATE),
        ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
    ]
    assert verify_ledger(home / "incidents" / "inc-st-r").ok


def test_a_succeeded_incident_is_completed_in_prefect(home: Path, tmp_path: Path) -> None:
    """A run whose every step finished ends its flow run Completed, in one run."""
    path = tmp_path / "fine.md"
    path.write_text(
        "---\nid: fine\ntitle: fine test\nkind: other\nseverity: sev3\nversion: 1\n"
        'owner: "#t"\n---\n# Fine\n```step\nid: note\nuses: evidence.note\n'
        "with:\n  text: all good\n```\n"
    )
    assert start_run(settings_for(home), path, {}, incident_id="inc-st-c").status == "succeeded"
    [flow_run] = flow_runs_of("inc-st-c")
    assert flow_run.state is not None and flow_run.state.type is StateType.COMPLETED
    assert history(flow_run) == [
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
    ]


def test_a_run_started_from_another_flow_run_tags_it_with_the_incident(home: Path) -> None:
    """Started inside a flow run (a deployment's on a worker), the incident still gets its own
    flow run, and the flow run it came from carries the incident's tag beside it."""
    from prefect import flow

    @flow(name="starter", persist_result=False)
    def starter() -> str:
        return start_run(
            settings_for(home), GATED, {"service": "api"}, incident_id="inc-st-p"
        ).status

    assert starter() == "waiting"
    found = {run.flow_id: run for run in flow_runs_of("inc-st-p")}
    assert len(found) == 2
    with get_client(sync_client=True) as client:
        names = {client.read_flow(flow_id).name: run for flow_id, run in found.items()}
    assert set(names) == {"starter", "gated"}
    assert names["gated"].name == "inc-st-p"
    assert names["gated"].state is not None and names["gated"].state.type is StateType.PAUSED
    assert names["starter"].state is not None and names["starter"].state.type is StateType.COMPLETED


def test_an_error_that_stops_the_engine_fails_the_flow_run_and_reaches_the_caller(
    home: Path,
) -> None:
    """When the ledger refuses the resume's first record, the caller gets the engine's own error
    (with its hint) and the flow run ends Failed saying it."""
    from flows.errors import RunbookError

    settings = settings_for(home)
    start_run(settings, GATED, {"service": "api"}, incident_id="inc-st-e")
    ledger = home / "incidents" / "inc-st-e" / "ledger.jsonl"
    ledger.write_bytes(ledger.read_bytes()[:-40])  # a cut-off tail: appending must be refused
    with pytest.raises(RunbookError, match="refusing to append"):
        resume_run(settings, "inc-st-e")
    [flow_run] = flow_runs_of("inc-st-e")
    assert flow_run.state is not None and flow_run.state.type is StateType.FAILED
    assert "refusing to append" in (flow_run.state.message or "")
