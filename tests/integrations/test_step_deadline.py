"""Actions that wait stop at their step's deadline, and the commands they start die with them."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.contract.actions import ActionContext
from flows.errors import StepFailed
from integrations import shell
from integrations.forensics.collectors import command
from integrations.forensics.collectors.base import Collected, Kit
from integrations.forensics.store import ArtifactStore
from tests.support import PROJECT

RunAction = Callable[..., dict[str, Any]]
MakeContext = Callable[..., ActionContext]


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def gone_within(pid: int, seconds: float) -> bool:
    """Whether the process is gone within `seconds`."""
    until = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < until:
        time.sleep(0.05)
    return not alive(pid)


def read_pid(path: Path, seconds: float = 30) -> int:
    """The pid a command wrote to `path`, once it has."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"nothing wrote a pid to {path}")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback port that takes connections (the kernel queues them) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/health"


def test_shell_run_stops_at_the_step_deadline(
    run_action: RunAction, make_context: MakeContext, tmp_path: Path
) -> None:
    """A command with a long limit of its own is killed, children too, when the step's time is
    up."""
    pid_file = tmp_path / "sleep.pid"
    script = f"sleep 30 & echo $! > {pid_file}; wait"
    context = make_context(deadline=time.monotonic() + 1)
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"ran past the step's timeout_s: killed it and its"):
        run_action("shell.run", {"argv": ["sh", "-c", script], "timeout_s": 60}, context)
    assert time.monotonic() - started < 5
    assert gone_within(int(pid_file.read_text()), 2)


def test_shell_run_keeps_its_own_shorter_limit(
    run_action: RunAction, make_context: MakeContext
) -> None:
    """A command whose own timeout_s comes before the step's deadline is killed at its own."""
    context = make_context(deadline=time.monotonic() + 60)
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"ran past 0\.5 s"):
        run_action("shell.run", {"argv": ["sleep", "30"], "timeout_s": 0.5}, context)
    assert time.monotonic() - started < 5


def test_http_request_stops_at_the_step_deadline(
    run_action: RunAction, make_context: MakeContext, silent_server: str
) -> None:
    """A request to a server that never answers gives up when the step's time is up, not at
    its own 10 s."""
    context = make_context(deadline=time.monotonic() + 1)
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"timed out after the step's timeout_s"):
        run_action("http.request", {"url": silent_server}, context)
    assert time.monotonic() - started < 4


def test_http_request_is_not_sent_once_the_time_is_up(
    run_action: RunAction, make_context: MakeContext, silent_server: str
) -> None:
    """With no time left the request is not sent, and the step says why."""
    context = make_context(deadline=time.monotonic() - 1)
    with pytest.raises(StepFailed, match=r"not sent: the step's timeout_s had run out"):
        run_action("http.request", {"url": silent_server}, context)


def test_forensics_command_stops_at_the_step_deadline(tmp_path: Path) -> None:
    """A collector's program is killed when the step's time is up; what it printed is kept."""
    kit = Kit(ArtifactStore(tmp_path / "evidence"), lambda text: text, time.monotonic() + 1)
    spec = command.CommandSpec(type="command", argv=["sh", "-c", "echo started; exec sleep 30"])
    started = time.monotonic()
    [piece] = list(command.collect(spec, kit))
    assert time.monotonic() - started < 5
    assert isinstance(piece, Collected)
    assert piece.facts["timed_out"] is True
    assert piece.artifact.path.read_bytes() == b"started\n"


OWNER = {
    "shell.run": """
        from pathlib import Path
        from flows.contract.actions import ActionContext
        from integrations.backends import local_backends
        from integrations.shell import RunArgs, run

        home = Path(sys.argv[1])
        backends = local_backends(home, echo=None)
        # shell.run writes no evidence: the log is never called.
        context = ActionContext(
            incident="inc-1", runbook="rb", step="capture", tickets=backends.tickets,
            chat=backends.chat, evidence=None, home=home,
        )
        run(RunArgs(argv=sys.argv[2:]), context)
    """,
    "forensics command": """
        from pathlib import Path
        from integrations.forensics.collectors.base import Kit
        from integrations.forensics.collectors.command import CommandSpec, collect
        from integrations.forensics.store import ArtifactStore

        kit = Kit(ArtifactStore(Path(sys.argv[1]) / "evidence"), lambda text: text)
        list(collect(CommandSpec(type="command", argv=sys.argv[2:]), kit))
    """,
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a parent-death signal is Linux")
@pytest.mark.parametrize("starter", sorted(OWNER))
def test_command_dies_with_the_process_that_started_it(starter: str, tmp_path: Path) -> None:
    """A process running a command is killed with SIGKILL: the command is killed too."""
    pid_file = tmp_path / "child.pid"
    code = "import sys\n" + textwrap.dedent(OWNER[starter])
    argv = ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"]
    owner = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path), *argv], cwd=PROJECT, stdin=subprocess.DEVNULL
    )
    child = read_pid(pid_file)
    try:
        assert alive(child)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        assert gone_within(child, 5), f"the command {child} outlived its owner"
    finally:
        owner.kill()
        if alive(child):
            subprocess.run(["kill", "-9", str(child)], check=False)


def test_commands_still_run_where_there_is_no_parent_death_signal(
    run_action: RunAction, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off Linux there is no prctl: commands start without it and run as before."""
    monkeypatch.setattr(sys, "platform", "darwin")
    shell._prctl.cache_clear()
    try:
        assert shell._die_with_owner() is None
        assert run_action("shell.run", {"argv": ["echo", "ok"]})["stdout"] == "ok\n"
    finally:
        monkeypatch.undo()
        shell._prctl.cache_clear()
    assert shell._die_with_owner() is not None
