"""The `command` collector: one program's interleaved stdout and stderr, capped, no shell."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from contextlib import suppress
from typing import Literal

from pydantic import BaseModel, Field

from flows.errors import StepFailed
from integrations.forensics.collectors.base import SPEC_CONFIG, Collected, Kit, MiB, Pieces
from integrations.shell import start_process


class CommandSpec(BaseModel):
    """Run a program and keep what it printed."""

    model_config = SPEC_CONFIG

    type: Literal["command"] = Field(description="Collector kind: `command`.")
    argv: list[str] = Field(
        min_length=1, description="Program and arguments, e.g. `[ss, -tanp]`; no shell."
    )
    timeout_s: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="Seconds before the program and its children die; the step's own"
        " `timeout_s` cuts it short.",
    )
    max_bytes: int = Field(
        default=MiB, gt=0, description="Bytes of output kept; the rest is read and dropped."
    )


def collect(spec: CommandSpec, kit: Kit) -> Pieces:
    """Run the program without the engine's `RUNBOOK_*` variables; store its output.

    The program gets its own `timeout_s` or what is left of the step's, whichever is shorter.
    """
    limit = kit.time_left(spec.timeout_s)
    if limit <= 0:
        raise StepFailed(f"{spec.argv[0]} not started: the step's timeout_s had run out")
    deadline = time.monotonic() + limit
    process = start_process(spec.argv, merge_stderr=True)
    with process:
        assert process.stdout is not None
        output, seen, finished = _read(process.stdout.fileno(), spec.max_bytes, deadline)
        if finished:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        timed_out = not finished or process.returncode is None
        if timed_out:
            # What it printed before the deadline is still evidence: keep it, note the kill.
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    facts = {
        "exit_code": process.returncode,
        "timed_out": timed_out,
        "output_bytes": seen,
        "truncated": seen > len(output),
    }
    yield Collected(" ".join(spec.argv), kit.put_text(output), facts)


def _read(fd: int, max_bytes: int, deadline: float) -> tuple[bytes, int, bool]:
    """Output up to the cap, total bytes seen, and whether the stream ended before the deadline."""
    kept = bytearray()
    seen = 0
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return bytes(kept), seen, False
            chunk = os.read(fd, 65536)
            if not chunk:
                return bytes(kept), seen, True
            seen += len(chunk)
            kept += chunk[: max(0, max_bytes - len(kept))]
