"""The shell.run action: argv without a shell, capped output, timeouts and exit codes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flows.errors import StepFailed
from integrations.shell import OUTPUT_CAP, RunArgs

RunAction = Callable[..., dict[str, Any]]


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def test_output_and_exit_code_are_returned(run_action: RunAction) -> None:
    """stdout, stderr and the exit code come back as outputs."""
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    outputs = run_action("shell.run", {"argv": python(code)})
    assert outputs == {"exit_code": 0, "stdout": "out\n", "stderr": "err\n"}


def test_argv_is_not_interpreted_by_a_shell(run_action: RunAction) -> None:
    """Shell syntax in an argument reaches the program as plain text."""
    outputs = run_action("shell.run", {"argv": ["echo", "$HOME; ls"]})
    assert outputs["stdout"] == "$HOME; ls\n"


def test_large_output_keeps_head_and_tail(run_action: RunAction) -> None:
    """Output past the cap keeps its start and end and says how much was left out."""
    code = "import sys; sys.stdout.write('H' + 'x' * 300_000 + 'T')"
    stdout = run_action("shell.run", {"argv": python(code)})["stdout"]
    omitted = 300_002 - OUTPUT_CAP
    assert stdout.startswith("Hx") and stdout.endswith("xT")
    assert f"[... {omitted} bytes omitted ...]" in stdout
    assert len(stdout) < OUTPUT_CAP + 100


def test_nonzero_exit_fails_with_code_and_stderr(run_action: RunAction) -> None:
    """A non-zero exit fails the step with the exit code and the end of stderr."""
    code = "import sys; print('permission denied on vault', file=sys.stderr); sys.exit(3)"
    with pytest.raises(StepFailed, match=r"exited with code 3: permission denied on vault"):
        run_action("shell.run", {"argv": python(code)})


def test_nonzero_exit_without_check_is_returned(run_action: RunAction) -> None:
    """With check false a non-zero exit code is an output, not a failure."""
    outputs = run_action("shell.run", {"argv": python("raise SystemExit(4)"), "check": False})
    assert outputs["exit_code"] == 4


def test_timeout_kills_the_process_group(run_action: RunAction, tmp_path: Path) -> None:
    """On timeout the command and the children it started are killed and the step fails."""
    pid_file = tmp_path / "sleep.pid"
    script = f"sleep 30 & echo $! > {pid_file}; wait"
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"ran past 0\.5 s"):
        run_action("shell.run", {"argv": ["sh", "-c", script], "timeout_s": 0.5})
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 2
    while alive(int(pid_file.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(int(pid_file.read_text()))


def test_env_adds_variables(run_action: RunAction) -> None:
    """Variables in `env` reach the command."""
    code = "import os; print(os.environ['TARGET'])"
    outputs = run_action("shell.run", {"argv": python(code), "env": {"TARGET": "api"}})
    assert outputs["stdout"] == "api\n"


def test_engine_settings_are_not_inherited(
    run_action: RunAction, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RUNBOOK_* variables (the engine's tokens among them) do not reach the command."""
    monkeypatch.setenv("RUNBOOK_SLACK_BOT_TOKEN", "xoxb-secret")
    code = "import os; print(os.environ.get('RUNBOOK_SLACK_BOT_TOKEN', 'absent'))"
    assert run_action("shell.run", {"argv": python(code)})["stdout"] == "absent\n"


def test_cwd_sets_the_working_directory(run_action: RunAction, tmp_path: Path) -> None:
    """The command runs in `cwd`."""
    code = "import os; print(os.getcwd())"
    outputs = run_action("shell.run", {"argv": python(code), "cwd": str(tmp_path)})
    assert outputs["stdout"] == f"{tmp_path}\n"


def test_missing_cwd_fails_the_step(run_action: RunAction, tmp_path: Path) -> None:
    """A working directory that does not exist fails the step, naming it."""
    with pytest.raises(StepFailed, match=r"working directory .*nowhere does not exist"):
        run_action("shell.run", {"argv": ["true"], "cwd": str(tmp_path / "nowhere")})


def test_unknown_program_fails_the_step(run_action: RunAction) -> None:
    """A program that is not installed fails the step, naming it."""
    with pytest.raises(StepFailed, match="command not found: no-such-tool"):
        run_action("shell.run", {"argv": ["no-such-tool"]})


def test_empty_argv_is_rejected() -> None:
    """argv needs at least the program."""
    with pytest.raises(ValidationError, match="argv"):
        RunArgs(argv=[])
