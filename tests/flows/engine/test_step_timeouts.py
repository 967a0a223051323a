"""A step past its `timeout_s` is stopped: its command killed, its requests cut short, recorded
as timed out, and its `on_failure` followed; what is left running can no longer act."""

from __future__ import annotations

import contextvars
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from flows.contract.actions import Action, ActionContext
from flows.contract.ports import NewTicket
from flows.engine.execute import Execution, RunOutcome, call_directly, execute
from flows.engine.registry import default_registry
from flows.engine.runner import load_plan, start_run
from flows.engine.settings import Settings
from flows.engine.timeouts import GRACE_S
from flows.evidence.incident import Incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import Record, RunbookRef
from flows.evidence.redact import Redactor
from flows.evidence.verify import read_records, verify_ledger
from integrations.backends import local_backends
from integrations.jira.local import LocalTicketStore
from tests.support import PROJECT, RUNBOOK_CLI, cli_env

HEAD = '---\nid: {id}\ntitle: {id}\nkind: other\nseverity: sev3\nversion: 1\nowner: "#t"\n---\n'


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.md"
    path.write_text(HEAD.format(id=name) + body)
    return path


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def gone_within(pid: int, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < until:
        time.sleep(0.05)
    return not alive(pid)


def failure(home: Path, incident: str, step: str) -> Record:
    [failed] = [
        r
        for r in read_records(home / "incidents" / incident)
        if r.event == "step.failed" and r.step == step
    ]
    return failed


def run_in_worker(settings: Settings, path: Path, incident: str) -> tuple[RunOutcome, float]:
    """Run a runbook from a worker thread, as `runbook serve` does, where an exception raised
    into the thread (Prefect's own task timeout) cannot interrupt a blocking call; the outcome
    and the seconds it took."""
    started = time.monotonic()
    with ThreadPoolExecutor(1) as worker:
        context = contextvars.copy_context()  # the session's Prefect API settings
        outcome = worker.submit(context.run, start_run, settings, path, {}, incident_id=incident)
        return outcome.result(timeout=120), time.monotonic() - started


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback port that takes connections (the kernel queues them) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/health"


@pytest.mark.usefixtures("prefect_api")
def test_a_command_past_the_step_timeout_is_killed_and_on_failure_continues(
    home: Path, tmp_path: Path
) -> None:
    """`sleep 15` with step `timeout_s: 2` fails as timed out in seconds, its process group is
    killed, and `on_failure: continue` goes on to the next step."""
    pid_file = tmp_path / "sleep.pid"
    path = write(
        tmp_path,
        "slow-probe",
        "# Probe\n```step\nid: probe\nuses: shell.run\ntimeout_s: 2\non_failure: continue\n"
        f"with:\n  argv: [sh, -c, 'sleep 15 & echo $! > {pid_file}; wait']\n```\n"
        "# Note\n```step\nid: note\nuses: evidence.note\nwith:\n  text: went on\n```\n",
    )
    outcome, took = run_in_worker(Settings(home=home, prefect="external"), path, "inc-probe")
    assert took < 10
    assert outcome.steps == {"probe": "failed", "note": "succeeded"}
    assert outcome.status == "succeeded"
    assert failure(home, "inc-probe", "probe").data["error"] == "timed out after 2 s"
    assert gone_within(int(pid_file.read_text()), 2), "the command's child outlived the step"


@pytest.mark.usefixtures("prefect_api")
def test_a_request_past_the_step_timeout_fails_promptly(
    home: Path, tmp_path: Path, silent_server: str
) -> None:
    """An `http.request` to a server that never answers, with step `timeout_s: 2`, fails as
    timed out well before its own 10 s."""
    path = write(
        tmp_path,
        "silent-health",
        f"# Health\n```step\nid: health\nuses: http.request\ntimeout_s: 2\nwith:\n"
        f"  url: {silent_server}\n```\n",
    )
    outcome, took = run_in_worker(Settings(home=home, prefect="external"), path, "inc-health")
    assert took < 8
    assert outcome.status == "failed"
    assert failure(home, "inc-health", "health").data["error"] == "timed out after 2 s"


@pytest.mark.usefixtures("prefect_api")
def test_every_retry_gets_the_whole_timeout(home: Path, tmp_path: Path) -> None:
    """Each attempt is stopped at its own `timeout_s`; the retry records why the first failed."""
    path = write(
        tmp_path,
        "slow-twice",
        "# Slow\n```step\nid: slow\nuses: shell.run\ntimeout_s: 1\nretries: 1\n"
        "with:\n  argv: [sleep, '15']\n```\n",
    )
    outcome, took = run_in_worker(Settings(home=home, prefect="external"), path, "inc-twice")
    assert took < 10
    assert outcome.status == "failed"
    records = read_records(home / "incidents" / "inc-twice")
    [retried] = [r for r in records if r.event == "step.retried"]
    assert retried.data["error"] == "timed out after 1 s"
    failed = failure(home, "inc-twice", "slow")
    assert (failed.data["error"], failed.data["attempts"]) == ("timed out after 1 s", 2)


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc for processes")
def test_a_killed_run_takes_its_command_with_it(home: Path, tmp_path: Path) -> None:
    """`runbook run` killed with SIGKILL mid-step: the step's command dies too, so a resume
    cannot find it still running."""
    pid_file = tmp_path / "capture.pid"
    path = write(
        tmp_path,
        "capture",
        "# Capture\n```step\nid: capture\nuses: shell.run\nwith:\n"
        f"  argv: [sh, -c, 'echo $$ > {pid_file}; exec sleep 60']\n```\n",
    )
    cli = subprocess.Popen(
        [*RUNBOOK_CLI, "run", str(path), "--incident", "inc-capture"],
        env=cli_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PROJECT,
    )
    child = None
    try:
        until = time.monotonic() + 90
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert time.monotonic() < until and cli.poll() is None, "the step never started"
            time.sleep(0.1)
        child = int(pid_file.read_text())
        assert alive(child)
        cli.send_signal(signal.SIGKILL)
        cli.wait(timeout=10)
        assert gone_within(child, 5), f"the step's command {child} outlived its run"
    finally:
        cli.kill()
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)


# -- an action that ignores its deadline ------------------------------------------------------


class StubbornArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    wait_s: float


class Stubborn:
    """An action that waits without looking at its deadline, then opens a ticket."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.finished = threading.Event()
        self.error: Exception | None = None

    def run(self, args: StubbornArgs, ctx: ActionContext) -> Mapping[str, Any]:
        self.release.wait(args.wait_s)
        try:
            ticket = ctx.tickets.create_issue(
                NewTicket(project="OPS", summary="late"), ctx.dedupe_key
            )
            return {"key": ticket.key}
        except Exception as error:
            self.error = error
            raise
        finally:
            self.finished.set()


def walk(tmp_path: Path, body: str, action: Stubborn) -> tuple[RunOutcome, list[Record], Path]:
    """Walk a runbook with the stubborn action registered, no orchestrator; outcome, records,
    home."""
    registry = default_registry()
    registry.add(Action(name="test.stubborn", args=StubbornArgs, run=action.run, outputs=("key",)))
    path = write(tmp_path, "stubborn", body)
    plan = load_plan(path, registry)
    incident = Incident(
        id="INC-1",
        runbook=runbook_info(plan.runbook, path),
        inputs={},
        started_at="2026-12-01T00:00:00+00:00",
    )
    home, evidence = tmp_path / "home", tmp_path / "evidence"
    backends = local_backends(home, echo=None)
    runbook = plan.runbook
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(evidence, incident.id, ref) as ledger:
        outcome = execute(
            Execution(
                plan=plan,
                incident=incident,
                inputs={},
                registry=registry,
                tickets=backends.tickets,
                chat=backends.chat,
                ledger=ledger,
                redactor=Redactor(),
                home=home,
                evidence=evidence,
                call_step=call_directly,
            )
        )
    return outcome, read_records(evidence), home


STUBBORN = (
    "# Wait\n```step\nid: wait\nuses: test.stubborn\ntimeout_s: 0.5\nwith:\n"
    "  wait_s: {wait_s}\n```\n"
)


def test_an_action_that_ignores_its_deadline_is_left_and_cannot_act_later(
    tmp_path: Path,
) -> None:
    """The step ends at its timeout and a short grace although the action goes on; when it
    wakes up it can no longer open a ticket."""
    action = Stubborn()
    started = time.monotonic()
    try:
        outcome, records, home = walk(tmp_path, STUBBORN.format(wait_s=30), action)
    finally:
        action.release.set()
    assert time.monotonic() - started < 0.5 + GRACE_S + 1.5
    assert outcome.status == "failed"
    [failed] = [r for r in records if r.event == "step.failed"]
    assert failed.data["error"].startswith("timed out after 0.5 s; the action had not stopped")
    assert action.finished.wait(5)
    assert "refused: this attempt ran past its step's timeout_s" in str(action.error)
    assert LocalTicketStore(home / "tickets.db").list_tickets() == []
    assert verify_ledger(tmp_path / "evidence").ok


def test_an_action_done_after_its_deadline_fails_as_timed_out(tmp_path: Path) -> None:
    """An attempt that returns after its timeout_s (within the grace) is not a success."""
    action = Stubborn()
    outcome, records, _ = walk(tmp_path, STUBBORN.format(wait_s=0.8), action)
    assert outcome.status == "failed"
    [failed] = [r for r in records if r.event == "step.failed"]
    assert failed.data["error"] == "timed out after 0.5 s"


def test_an_action_done_in_time_succeeds(tmp_path: Path) -> None:
    """Within its timeout_s the action runs as without one: its outputs are the step's."""
    action = Stubborn()
    outcome, records, home = walk(tmp_path, STUBBORN.format(wait_s=0), action)
    assert outcome.status == "succeeded"
    [done] = [r for r in records if r.event == "step.succeeded"]
    assert done.outputs["key"] == "OPS-1"
    assert len(LocalTicketStore(home / "tickets.db").list_tickets()) == 1
