"""The `shell.run` action: run one command (argv, never a shell string) with a deadline.

The command runs in its own process group so a timeout kills everything it started, and on
Linux it dies with the engine: killed with SIGKILL, the engine can clean nothing up itself, so the
kernel does it. Its output is captured up to a cap per stream, keeping the head and the tail,
where results and errors are. The engine's own `RUNBOOK_*` variables (tokens among them) are not
passed to the command.
"""

from __future__ import annotations

import functools
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import IO, Any, cast

from pydantic import BaseModel, ConfigDict, Field

from flows.contract.actions import Action, ActionContext, Reach
from flows.errors import StepFailed

OUTPUT_CAP = 64 * 1024
"""Bytes of stdout (and of stderr) kept: the first and last halves, with a note of the gap."""

ERROR_TAIL = 2000
"""Characters of stderr quoted when a command fails."""


class RunArgs(BaseModel):
    """Arguments of `shell.run`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: list[str] = Field(
        min_length=1, description="Program and arguments, e.g. `[kubectl, get, pods]`; no shell."
    )
    timeout_s: float = Field(
        default=60,
        gt=0,
        description="Seconds before the command and its children are killed; the step's own"
        " `timeout_s` cuts it short.",
    )
    cwd: str | None = Field(
        default=None, description="Working directory; the engine's own when left out."
    )
    check: bool = Field(default=True, description="Fail the step when the exit code is not 0.")
    env: dict[str, str] = Field(
        default_factory=dict, description="Variables added to the inherited environment."
    )


class _Capture:
    """One output stream, capped: its first and last `OUTPUT_CAP / 2` bytes and a byte count."""

    def __init__(self) -> None:
        self._half = OUTPUT_CAP // 2
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0

    def add(self, chunk: bytes) -> None:
        self._total += len(chunk)
        room = max(0, self._half - len(self._head))
        self._head += chunk[:room]
        self._tail += chunk[room:]
        del self._tail[: max(0, len(self._tail) - self._half)]

    def text(self) -> str:
        omitted = self._total - len(self._head) - len(self._tail)
        head = self._head.decode(errors="replace")
        tail = self._tail.decode(errors="replace")
        return f"{head}\n[... {omitted} bytes omitted ...]\n{tail}" if omitted else head + tail


PR_SET_PDEATHSIG = 1
"""prctl(2) option from <linux/prctl.h>: the signal a process gets when its parent thread ends."""


def _die_with_owner() -> Callable[[], None] | None:
    """What a child of this process runs between fork and exec to die with it; None where that
    is not possible (not Linux, no `prctl` in the C library): commands then die by timeout only.

    subprocess has no option for this, and `preexec_fn` is unsafe in a threaded program when the
    child runs Python that takes a lock another thread held at the fork (imports, logging). So the
    C function is looked up in the parent, once, and the child makes one foreign call and one
    `getppid`. The PyPI wrappers of prctl (python-prctl, pyprctl) would still run in `preexec_fn`
    and have had no release since 2021: ctypes it is.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    owner = os.getpid()

    def die_with_owner() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        # The owner may have died between the fork and the prctl, which then never fires.
        if os.getppid() != owner:
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_owner


@functools.cache
def _prctl() -> Callable[[int, int], int] | None:
    """The C library's prctl(2), or None off Linux or without one."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # loaded on first use: the catalog must stay cheap to import

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return cast(Callable[[int, int], int], prctl)


def start_process(
    argv: list[str],
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    merge_stderr: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a program (no shell) in its own process group, without the engine's `RUNBOOK_*`
    variables (they hold tokens), with output piped; a missing program is a StepFailed.

    On Linux the program is killed when the thread that started it ends, so it never outlives
    an engine killed with SIGKILL; the caller must wait for it in that thread (both callers do).
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")} | (env or {})
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            cwd=cwd,
            env=clean,
            start_new_session=True,  # a timeout kills the whole group
            preexec_fn=_die_with_owner(),
        )
    except FileNotFoundError as err:
        raise StepFailed(f"command not found: {argv[0]}") from err
    except PermissionError as err:
        raise StepFailed(f"not allowed to run {argv[0]}: {err.strerror}") from err


def run(args: RunArgs, ctx: ActionContext) -> dict[str, Any]:
    """Run the command; return exit code, stdout and stderr (fail on non-zero with `check`).

    The command gets its own `timeout_s` or what is left of the step's, whichever is shorter.
    """
    program = args.argv[0]
    if args.cwd is not None and not Path(args.cwd).is_dir():
        raise StepFailed(f"working directory {args.cwd} does not exist")
    limit = ctx.time_left(args.timeout_s)
    deadline = time.monotonic() + limit
    process = start_process(args.argv, cwd=args.cwd, env=args.env)
    with process:
        assert process.stdout is not None and process.stderr is not None
        stdout, stderr = _Capture(), _Capture()
        finished = _collect({process.stdout: stdout, process.stderr: stderr}, deadline)
        if finished:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        if process.returncode is None or not finished:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            within = f"{args.timeout_s:g} s" if limit == args.timeout_s else "the step's timeout_s"
            what = f"{program} ran past {within}: killed it and its children"
            raise StepFailed(_with_tail(what, stderr.text()))
    exit_code = process.returncode
    if args.check and exit_code != 0:
        if exit_code < 0:
            what = f"{program} was killed by signal {-exit_code}"
        else:
            what = f"{program} exited with code {exit_code}"
        raise StepFailed(_with_tail(what, stderr.text()))
    return {"exit_code": exit_code, "stdout": stdout.text(), "stderr": stderr.text()}


def _collect(streams: dict[IO[bytes], _Capture], deadline: float) -> bool:
    """Read every stream to its end; False when the deadline comes first."""
    with selectors.DefaultSelector() as selector:
        for stream, capture in streams.items():
            selector.register(stream, selectors.EVENT_READ, capture)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.add(chunk)
                else:
                    selector.unregister(key.fileobj)
    return True


def _with_tail(what: str, stderr: str) -> str:
    """A failure message: what happened, then the end of what the command wrote to stderr."""
    tail = stderr.strip()[-ERROR_TAIL:]
    return f"{what}: {tail}" if tail else what


ACTIONS = (
    Action(
        name="shell.run",
        args=RunArgs,
        run=run,
        outputs=("exit_code", "stdout", "stderr"),
        description="Run a command (no shell) with a timeout; output is captured and capped.",
        reach=Reach.OUTSIDE,
    ),
)
