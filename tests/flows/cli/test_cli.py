"""The `runbook` command as users run it: exit codes, JSON outcome, ack/resume, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from flows.evidence.verify import read_records
from tests.support import FIXTURES, PROJECT, RUNBOOK_CLI, cli_env, run_cli

GATED = FIXTURES / "runbooks" / "gated.md"


def test_validate_accepts_the_library_without_importing_prefect() -> None:
    """`runbook validate runbooks` passes and never imports Prefect."""
    code = (
        "import sys\nfrom flows.cli.app import main\n"
        "rc = main(['validate', 'runbooks'])\n"
        "assert 'prefect' not in sys.modules, 'validate imported prefect'\n"
        "sys.exit(rc)\n"
    )
    result = subprocess.run(
        [RUNBOOK_CLI[0], "-c", code], capture_output=True, text=True, cwd=PROJECT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runbook(s) valid" in result.stdout


def test_validate_reports_path_line_and_exits_1(tmp_path: Path) -> None:
    """An invalid runbook makes validate exit 1 with `path:line: message` and no traceback."""
    bad = tmp_path / "bad.md"
    bad.write_text(GATED.read_text().replace("uses: slack.post", "uses: slack.pots"))
    result = run_cli(tmp_path, "validate", str(bad))
    assert result.returncode == 1
    assert f"{bad}:28: unknown action 'slack.pots'" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_run_of_invalid_runbook_exits_2_without_traceback(tmp_path: Path) -> None:
    """`runbook run` on an invalid runbook is a validation error: exit 2, located message."""
    bad = tmp_path / "bad.md"
    bad.write_text(GATED.read_text().replace("id: announce", "id: ticket"))
    result = run_cli(tmp_path, "run", str(bad), "--input", "service=api")
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr and "duplicate" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("prefect_api")
def test_run_waits_then_ack_and_resume_succeed(home: Path) -> None:
    """Run exits 3 at the gate with a JSON last line; ack then resume exits 0."""
    result = run_cli(
        home, "run", str(GATED), "--input", "service=api", "--json", "--incident", "cli-1"
    )
    assert result.returncode == 3, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "waiting"
    assert outcome["incident"] == "cli-1" and outcome["runbook"] == "gated"
    assert outcome["steps"]["contain"] == "waiting"
    assert Path(outcome["evidence"]).is_dir()

    acked = run_cli(home, "ack", "cli-1", "contain", "--by", "alice", "--note", "done")
    assert acked.returncode == 0, acked.stderr
    resumed = run_cli(home, "resume", "cli-1", "--json")
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert final["status"] == "succeeded"
    assert final["steps"]["record"] == "succeeded"

    verified = run_cli(home, "evidence", "verify", "cli-1")
    assert verified.returncode == 0 and verified.stdout.startswith("ok:")
    tickets = run_cli(home, "tickets")
    assert "OPS-1" in tickets.stdout and "cli-1" in tickets.stdout


@pytest.mark.usefixtures("prefect_api")
def test_reject_from_the_terminal_needs_a_reason_and_ends_the_run_failed(home: Path) -> None:
    """`runbook reject` without a reason records nothing; with one, it is `gate.rejected` by the
    OS account, and the resume ends the run failed at the gate with that reason."""
    waiting = run_cli(home, "run", str(GATED), "--input", "service=api", "--incident", "cli-rej")
    assert waiting.returncode == 3, waiting.stderr
    folder = home / "incidents" / "cli-rej"
    before = len(read_records(folder))

    no_reason = run_cli(home, "reject", "cli-rej", "contain", "--reason", "  ")
    assert no_reason.returncode == 1 and "--reason" in no_reason.stderr
    assert len(read_records(folder)) == before

    rejected = run_cli(home, "reject", "cli-rej", "contain", "--reason", "keys still live")
    assert rejected.returncode == 0, rejected.stderr
    assert "rejected" in rejected.stdout
    record = read_records(folder)[-1]
    assert record.event.value == "gate.rejected" and record.data["reason"] == "keys still live"
    assert record.data["channel"] == "cli"

    resumed = run_cli(home, "resume", "cli-rej", "--json")
    final = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert resumed.returncode == 1, resumed.stderr
    assert final["status"] == "failed" and final["steps"]["contain"] == "failed"
    assert "keys still live" in final["error"]


@pytest.mark.usefixtures("prefect_api")
def test_killed_run_resumes_without_duplicate_ticket_or_message(home: Path, tmp_path: Path) -> None:
    """A run killed mid-step resumes from that step; the ticket and message are not repeated."""
    marker = tmp_path / "slept-once"
    doc = tmp_path / "crashy.md"
    doc.write_text(
        GATED.read_text()
        .replace("id: gated", "id: crashy")
        .replace(
            "## Contain\n- [ ] Fail over to the standby\n- [ ] Confirm errors dropped\n",
            "## Slow capture\n```step\nid: capture\nuses: shell.run\nwith:\n"
            f"  argv: [sh, -c, 'test -f {marker} || (touch {marker}; sleep 60)']\n```\n",
        )
    )
    process = subprocess.Popen(
        [*RUNBOOK_CLI, "run", str(doc), "--input", "service=api", "--incident", "crash-1"],
        env=cli_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PROJECT,
        start_new_session=True,
    )
    folder = home / "incidents" / "crash-1"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if (
            folder.exists()
            and ("step.started", "capture") in [(r.event, r.step) for r in read_records(folder)]
            and marker.exists()
        ):
            break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the run never reached the capture step")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()

    resumed = run_cli(home, "resume", "crash-1", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["status"] == "succeeded"
    started = [r.step for r in read_records(folder) if r.event == "step.started"]
    assert started == ["ticket", "announce", "capture", "capture", "record"]
    messages = [json.loads(line) for line in (home / "outbox.jsonl").read_text().splitlines()]
    assert len([m for m in messages if m["kind"] == "message"]) == 1
    assert run_cli(home, "tickets").stdout.count("crash-1") == 1
    assert run_cli(home, "evidence", "verify", "crash-1").returncode == 0


def test_evidence_verify_exits_1_on_tampering(home: Path) -> None:
    """Editing one ledger record makes `evidence verify` exit 1 and name the record."""
    from flows.evidence.ledger import Ledger
    from flows.evidence.records import Event, RunbookRef

    folder = home / "incidents" / "manual"
    with Ledger(folder, "manual", RunbookRef(id="x", version=1, sha256="0" * 64)) as ledger:
        for n in range(3):
            ledger.record(Event.NOTE, data={"n": n})
    ledger_file = folder / "ledger.jsonl"
    ledger_file.write_text(ledger_file.read_text().replace('"n":1', '"n":7'))
    result = run_cli(home, "evidence", "verify", str(folder))
    assert result.returncode == 1
    assert "record 2" in result.stdout


def test_list_shows_the_library(tmp_path: Path) -> None:
    """`runbook list` shows each library runbook with kind, severity and triggers."""
    result = run_cli(tmp_path, "list", "runbooks")
    assert result.returncode == 0, result.stderr
    for expected in (
        "credential-leak",
        "model-degradation",
        "service-outage",
        "alert:alertmanager",
    ):
        assert expected in result.stdout


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    """A mistyped option exits 2."""
    assert run_cli(tmp_path, "run", str(GATED), "--bogus").returncode == 2


@pytest.mark.usefixtures("prefect_api")
def test_secret_input_stays_out_of_console_and_prefect_logs(home: Path, tmp_path: Path) -> None:
    """A secret input never shows in the CLI's output nor in the logs Prefect stores."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        LogFilter,
        LogFilterFlowRunId,
    )

    canary = "canary-Tok-93be1f0a"
    doc = tmp_path / "leaky.md"
    doc.write_text(
        "---\nid: leaky\ntitle: Leaky\nkind: other\nseverity: sev3\nversion: 1\nowner: '#t'\n"
        "inputs:\n  token: {type: string, secret: true, required: true}\n---\n# Leaky\n"
        "```step\nid: say\nuses: slack.post\nwith:\n  channel: '#t'\n"
        "  text: 'token is {{ inputs.token }}'\n```\n"
        "```step\nid: fail\nuses: shell.run\nwith:\n"
        "  argv: [sh, -c, 'echo {{ inputs.token }}; exit 4']\n```\n"
    )
    result = subprocess.run(
        [*RUNBOOK_CLI, "run", str(doc), "--input", f"token={canary}", "--incident", "leak-1"],
        env=cli_env(home, PREFECT_LOGGING_TO_API_ENABLED="true"),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        cwd=PROJECT,
    )
    assert result.returncode == 1, result.stderr
    assert "token is [REDACTED]" in result.stderr
    assert canary not in result.stdout + result.stderr

    async def stored_logs() -> list[str]:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["leak-1"]))
            )
            for _ in range(40):  # logs reach the API in batches
                logs = await client.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id]))
                )
                if any("fail" in log.message for log in logs):
                    return [log.message for log in logs]
                await asyncio.sleep(0.25)
            return [log.message for log in logs]

    messages = asyncio.run(stored_logs())
    assert any("Finished in state" in m for m in messages)
    assert not [m for m in messages if canary in m]
