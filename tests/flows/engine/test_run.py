"""Runbooks compiled into real Prefect flows: outcomes, gates, resume, retries and evidence."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from flows.contract.ports import GateAnswer
from flows.engine.authority import Outcome
from flows.engine.runner import acknowledge_gate, resume_run, start_run
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.verify import read_records, verify_ledger
from flows.runbook.identity import named_identity
from flows.runbook.model import Gate
from integrations.jira.local import LocalTicketStore
from tests.support import FIXTURES

pytestmark = pytest.mark.usefixtures("prefect_api")

GATED = FIXTURES / "runbooks" / "gated.md"


def settings_for(home: Path) -> Settings:
    return Settings(home=home, prefect="external")


def write(tmp_path: Path, name: str, body: str, front: str = "") -> Path:
    """Write a small runbook with standard front matter (plus `front`) and `body`."""
    path = tmp_path / f"{name}.md"
    head = (
        f"---\nid: {name}\ntitle: {name} test\nkind: other\nseverity: sev3\nversion: 1\n"
        f'owner: "#t"\n{front}---\n'
    )
    path.write_text(head + body)
    return path


def events(home: Path, incident: str) -> list[tuple[str, str | None]]:
    return [(r.event, r.step) for r in read_records(home / "incidents" / incident)]


def outbox(home: Path) -> list[dict]:
    path = home / "outbox.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Scripted:
    """A responder that answers every gate with a fixed name."""

    def __init__(self, by: str | None) -> None:
        self.by = by
        self.asked: list[str] = []

    def ask(self, gate: Gate, incident: str) -> GateAnswer | None:
        self.asked.append(gate.id)
        return GateAnswer(by=self.by, note="done", via="test") if self.by else None


def test_gated_run_waits_then_resumes_without_repeating(home: Path) -> None:
    """A non-interactive run stops at the gate; ack + resume finish it without repeating steps."""
    settings = settings_for(home)
    first = start_run(settings, GATED, {"service": "api"}, incident_id="inc-gate-1")
    assert first.status == "waiting"
    assert first.steps == {
        "ticket": "succeeded",
        "announce": "succeeded",
        "contain": "waiting",
        "record": "pending",
    }
    alice = named_identity("alice")
    assert acknowledge_gate(settings, "inc-gate-1", "contain", alice, "failed over").acknowledged
    again = acknowledge_gate(settings, "inc-gate-1", "contain", alice)
    assert again.outcome is Outcome.ALREADY
    second = resume_run(settings, "inc-gate-1")
    assert second.status == "succeeded"
    assert set(second.steps.values()) == {"succeeded", "acknowledged"}
    started = [step for event, step in events(home, "inc-gate-1") if event == "step.started"]
    assert started == ["ticket", "announce", "record"]
    assert len(LocalTicketStore(home / "tickets.db").list_tickets()) == 1
    assert len([m for m in outbox(home) if m["kind"] == "message"]) == 1
    assert verify_ledger(home / "incidents" / "inc-gate-1").ok


def test_an_incident_already_running_is_not_run_twice(home: Path, tmp_path: Path) -> None:
    """While one process runs an incident, a second resume is refused and changes nothing."""
    import subprocess
    import sys
    import textwrap

    settings = settings_for(home)
    start_run(settings, GATED, {"service": "api"}, incident_id="inc-busy-1")
    acknowledge_gate(settings, "inc-busy-1", "contain", named_identity("alice"))
    folder = home / "incidents" / "inc-busy-1"
    before = (folder / "ledger.jsonl").read_bytes()
    holder = subprocess.Popen(  # another process in the middle of running it
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from pathlib import Path
                from flows.evidence.incident import running
                with running(Path({str(folder)!r})):
                    print("holding", flush=True)
                    sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        with pytest.raises(RunbookError, match=rf"being run by process {holder.pid}"):
            resume_run(settings, "inc-busy-1")
        assert (folder / "ledger.jsonl").read_bytes() == before
    finally:
        holder.communicate("\n", timeout=30)
    assert resume_run(settings, "inc-busy-1").status == "succeeded"  # free once it stopped


def test_gate_ack_records_who_and_note(home: Path) -> None:
    """An acknowledgement puts the responder as actor and their note in the evidence."""
    settings = settings_for(home)
    start_run(settings, GATED, {"service": "api"}, incident_id="inc-gate-2")
    acknowledge_gate(settings, "inc-gate-2", "contain", named_identity("bob"), "standby is primary")
    ack = [
        r for r in read_records(home / "incidents" / "inc-gate-2") if r.event == "gate.acknowledged"
    ]
    assert [(r.actor, r.data["note"], r.step) for r in ack] == [
        ("bob", "standby is primary", "contain")
    ]


def test_interactive_responder_answers_gate_in_the_same_run(home: Path) -> None:
    """A responder at the terminal acknowledges the gate and the run finishes in one go."""
    responder = Scripted("carol")
    outcome = start_run(
        settings_for(home), GATED, {"service": "api"}, incident_id="inc-tty", responder=responder
    )
    assert outcome.status == "succeeded"
    assert responder.asked == ["contain"]


def test_ack_of_unknown_gate_is_a_clear_error(home: Path) -> None:
    """Acknowledging a gate the runbook does not have names the gates it does have."""
    settings = settings_for(home)
    start_run(settings, GATED, {"service": "api"}, incident_id="inc-gate-3")
    with pytest.raises(RunbookError, match="its gates: contain"):
        acknowledge_gate(settings, "inc-gate-3", "nope", named_identity("alice"))


def test_missing_required_input_is_reported_at_its_line(home: Path) -> None:
    """A required input that was not given is a validation error naming the input's line."""
    with pytest.raises(RunbookError) as error:
        start_run(settings_for(home), GATED, {})
    assert "gated.md:10: input 'service' is required" in str(error.value)


def test_flow_and_tasks_are_named_after_runbook_and_steps(home: Path) -> None:
    """Prefect records one flow run named after the runbook and one task run per step id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterName

    outcome = start_run(
        settings_for(home),
        GATED,
        {"service": "api"},
        incident_id="inc-prefect",
        responder=Scripted("dave"),
    )
    assert outcome.status == "succeeded"

    async def query() -> tuple[list[str], list[str], list[str]]:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["inc-prefect"]))
            )
            flow = await client.read_flow(runs[0].flow_id)
            # Task runs reach the API through Prefect's event pipeline: give it a moment.
            for _ in range(60):
                tasks = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id]))
                )
                if len(tasks) >= 3:
                    break
                await asyncio.sleep(0.25)
            return [flow.name], sorted(t.name for t in tasks), [runs[0].state.type.value]

    flow_names, task_names, states = asyncio.run(query())
    assert flow_names == ["gated"]
    assert task_names == ["announce", "record", "ticket"]
    assert states == ["COMPLETED"]


def test_retries_are_recorded_and_then_succeed(home: Path, tmp_path: Path) -> None:
    """A step that fails twice then works is retried by Prefect and each retry is in the ledger."""
    counter = tmp_path / "count"
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ $n -ge 3 ]"
    )
    path = write(
        tmp_path,
        "flaky",
        "# Flaky\n```step\nid: flaky\nuses: shell.run\nretries: 2\nwith:\n"
        f"  argv: [sh, -c, '{script}']\n```\n",
    )
    outcome = start_run(settings_for(home), path, {}, incident_id="inc-retry")
    assert outcome.status == "succeeded"
    assert [e for e, _ in events(home, "inc-retry")].count("step.retried") == 2
    assert counter.read_text().strip() == "3"


def test_timeout_fails_the_step_and_stops_the_run(home: Path, tmp_path: Path) -> None:
    """A step over its timeout_s fails, the run stops, and later steps stay pending."""
    path = write(
        tmp_path,
        "slow",
        "# Slow\n```step\nid: slow\nuses: shell.run\ntimeout_s: 1\n"
        "with:\n  argv: [sleep, '10']\n```\n"
        "```step\nid: after\nuses: evidence.note\nwith:\n  text: never\n```\n",
    )
    outcome = start_run(settings_for(home), path, {}, incident_id="inc-timeout")
    assert outcome.status == "failed"
    assert outcome.steps == {"slow": "failed", "after": "pending"}
    assert "time" in (outcome.error or "").lower()


def test_on_failure_runs_rollback_then_stops(home: Path, tmp_path: Path) -> None:
    """A failing step with on_failure naming a rollback runs that step, then the run fails."""
    path = write(
        tmp_path,
        "rollback",
        "# Rollback\n```step\nid: change\nuses: shell.run\non_failure: undo\n"
        "with:\n  argv: ['false']\n```\n"
        "```step\nid: next\nuses: evidence.note\nwith:\n  text: not reached\n```\n"
        "```step\nid: undo\nuses: evidence.note\nwith:\n  text: rolled back\n```\n",
    )
    outcome = start_run(settings_for(home), path, {}, incident_id="inc-rollback")
    assert outcome.status == "failed"
    assert outcome.steps == {"change": "failed", "next": "pending", "undo": "succeeded"}


def test_on_failure_continue_keeps_going(home: Path, tmp_path: Path) -> None:
    """A failing step with on_failure: continue is recorded as failed and the run goes on."""
    path = write(
        tmp_path,
        "cont",
        "# Continue\n```step\nid: probe\nuses: shell.run\non_failure: continue\n"
        "with:\n  argv: ['false']\n```\n"
        "```step\nid: next\nuses: evidence.note\nwith:\n  text: reached\n```\n",
    )
    outcome = start_run(settings_for(home), path, {}, incident_id="inc-continue")
    assert outcome.status == "succeeded"
    assert outcome.steps == {"probe": "failed", "next": "succeeded"}


def test_if_false_skips_step(home: Path, tmp_path: Path) -> None:
    """A step whose `if` is false is skipped and recorded as skipped."""
    path = write(
        tmp_path,
        "cond",
        "# Cond\n```step\nid: check\nuses: http.request\nif: \"inputs.url != ''\"\n"
        "with:\n  url: '{{ inputs.url }}'\n```\n",
        front="inputs:\n  url: {type: string, default: ''}\n",
    )
    outcome = start_run(settings_for(home), path, {}, incident_id="inc-if")
    assert outcome.steps == {"check": "skipped"}
    assert ("step.skipped", "check") in events(home, "inc-if")


def test_secret_input_never_reaches_ledger_outbox_or_prefect(home: Path, tmp_path: Path) -> None:
    """A secret input used by steps is redacted from the ledger, chat, files and Prefect."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    canary = "canary-Secret-7f3a9c"
    path = write(
        tmp_path,
        "secretive",
        "# Use the secret\n```step\nid: echo\nuses: shell.run\nwith:\n"
        "  argv: [echo, 'token={{ inputs.api_token }}']\n```\n"
        "```step\nid: tell\nuses: slack.post\nwith:\n  channel: '#t'\n"
        "  text: 'using {{ inputs.api_token }}'\n```\n"
        "```step\nid: boom\nuses: shell.run\nwith:\n"
        "  argv: [sh, -c, 'echo {{ inputs.api_token }} >&2; exit 3']\n```\n",
        front="inputs:\n  api_token: {type: string, secret: true, required: true}\n",
    )
    outcome = start_run(settings_for(home), path, {"api_token": canary}, incident_id="inc-secret")
    assert outcome.steps == {"echo": "succeeded", "tell": "succeeded", "boom": "failed"}
    assert canary not in (outcome.error or "")
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "ledger.jsonl" for p in files)
    for file in files:
        assert canary.encode() not in file.read_bytes(), file

    async def parameters() -> dict:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["inc-secret"]))
            )
            return runs[0].parameters

    params = asyncio.run(parameters())
    assert canary not in json.dumps(params)
    assert params["inputs"]["api_token"] == "[REDACTED]"


def test_run_publishes_steps_and_evidence_link_as_prefect_artifacts(home: Path) -> None:
    """The flow run carries a table of its steps and a link to its evidence on Prefect."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterName,
    )

    start_run(settings_for(home), GATED, {"service": "api"}, incident_id="Inc_Art.1")

    async def artifacts() -> tuple[dict[str, object], set[object], list[object]]:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["inc-art-1-steps", "inc-art-1-evidence"])
                )
            )
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["Inc_Art.1"]))
            )
            return {a.key: a.data for a in found}, {a.flow_run_id for a in found}, runs

    data, attached_to, runs = asyncio.run(artifacts())
    assert set(data) == {"inc-art-1-steps", "inc-art-1-evidence"}
    assert attached_to == {runs[0].id}  # both on the incident's flow run
    assert "contain" in str(data["inc-art-1-steps"])
    assert "(file:///" in str(data["inc-art-1-evidence"])


def test_configured_tokens_and_patterns_are_redacted_from_evidence(
    home: Path, tmp_path: Path
) -> None:
    """The install's own secrets and its extra redaction patterns never reach the ledger."""
    from pydantic import SecretStr

    path = write(
        tmp_path,
        "leaky-note",
        "# Note\n```step\nid: jot\nuses: evidence.note\nwith:\n"
        "  text: 'hook-canary-55aa and customer ACME-123456'\n```\n",
    )
    settings = Settings(
        home=home,
        prefect="external",
        webhook_token=SecretStr("hook-canary-55aa"),
        redact_patterns=[r"ACME-\d{6}"],
    )
    assert start_run(settings, path, {}, incident_id="inc-redact").status == "succeeded"
    ledger = (home / "incidents" / "inc-redact" / "ledger.jsonl").read_text()
    assert "hook-canary-55aa" not in ledger and "ACME-123456" not in ledger
    assert "[REDACTED] and customer [REDACTED]" in ledger


def test_a_run_records_its_incident_facts_so_an_edited_incident_json_fails_verify(
    home: Path,
) -> None:
    """Turning a real incident into a drill by editing incident.json is caught by verify."""
    outcome = start_run(
        settings_for(home),
        GATED,
        {"service": "api"},
        incident_id="inc-facts",
        alert={"labels": {"a": "b"}},
    )
    folder = home / "incidents" / "inc-facts"
    assert verify_ledger(folder).ok
    facts = json.loads((folder / "incident.json").read_text())
    (folder / "incident.json").write_text(json.dumps(facts | {"drill": True}))
    assert outcome.incident == "inc-facts"
    assert "drill" in str(verify_ledger(folder).problem)
