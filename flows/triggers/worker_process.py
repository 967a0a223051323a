"""Run the workers in a process of their own, so runs never slow down webhook answers.

Prefect flows are CPU work in Python; in the server's process they would compete with the
HTTP handlers for the interpreter. The server starts one worker process (spawned, not forked:
the server has threads) over the same intake database, and nudges it through a pipe whenever it
commits new work. The worker process exits when the pipe closes, so it never outlives the server.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from flows.engine.settings import Settings
from flows.triggers.intake import Intake
from flows.triggers.server import load_library, make_server


def _main(settings: Settings, library: Path, threads: int, nudges: Connection) -> None:
    # Ctrl-C at the terminal reaches the whole process group. The server answers it by closing
    # the pipe, which lets running jobs finish here; the signal itself would only cut them off.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = make_server(settings, load_library(library), dev=False, threads=threads)
    server.workers.start()
    try:
        while True:
            nudges.recv_bytes()
            server.state.intake.wakeup.set()
    except (EOFError, OSError):  # the server closed the pipe: stop taking work
        pass
    finally:
        server.workers.stop()


@dataclass
class WorkerProcess:
    """The server's handle on its worker process."""

    process: multiprocessing.process.BaseProcess
    nudges: Connection
    lock: threading.Lock

    def nudge(self) -> None:
        """Tell the worker process there is new work (never blocks the caller for long)."""
        # A gone worker loses nothing: the work stays queued on disk for the next start.
        with self.lock, contextlib.suppress(OSError):
            self.nudges.send_bytes(b"")

    def stop(self, timeout: float = 60.0) -> None:
        """Close the pipe and wait for running jobs to finish."""
        with self.lock:
            self.nudges.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


def start_worker_process(
    settings: Settings, library: Path, intake: Intake, threads: int
) -> WorkerProcess:
    """Spawn the worker process and connect the intake's new-work signal to it."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_main,
        args=(settings, library, threads, receiver),
        name="runbook-workers",
        daemon=True,
    )
    # Started with Ctrl-C ignored, which a new process inherits: the signal reaching the group
    # while the child is still importing would otherwise end it with a KeyboardInterrupt dump.
    with _sigint_ignored():
        process.start()
    receiver.close()
    handle = WorkerProcess(process, sender, threading.Lock())
    intake.on_new_work.append(handle.nudge)
    return handle


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may change signal handlers; nothing to inherit then
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
