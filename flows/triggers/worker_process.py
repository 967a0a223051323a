"""Run the workers in a process of their own, so runs never slow down webhook answers.

Prefect flows are CPU work in Python; in the server's process they would compete with the
HTTP handlers for the interpreter. The server starts one worker process (spawned, not forked:
the server has threads) over the same intake database, and nudges it through a pipe whenever it
commits new work.

The two live and die together. A server that stops closes the pipe: the worker process lets its
running jobs finish, then exits. A server that is killed takes the worker process with it (the
kernel's parent-death signal), and the steps' own children follow their process; the jobs left
running are claimed again by the next server (resume semantics: nothing acts twice). A worker
process that dies while the server lives is started again at once, and the jobs it was running
are put back in the queue.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

from flows.engine.settings import Settings
from flows.triggers.intake import Intake
from flows.triggers.server import load_library, make_server

LOG = logging.getLogger("runbook.server")
WATCH_S = 0.5
"""How often the server looks whether its worker process is still alive."""
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere nothing).

    A worker process left running after the server is killed would hold its incidents' run
    locks while the next server tries to resume them. The signal is armed first, then the parent
    checked: a parent that died in between has made this process an orphan already.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _main(settings: Settings, library: Path, threads: int, nudges: Connection, parent: int) -> None:
    die_with_parent(parent)
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


class WorkerProcess:
    """The server's handle on its worker process, which it starts again whenever it dies."""

    def __init__(self, settings: Settings, library: Path, intake: Intake, threads: int) -> None:
        self.settings, self.library, self.intake, self.threads = settings, library, intake, threads
        self.lock = threading.Lock()
        self.restarts = 0
        self.last_death: float | None = None
        """When the worker process last died unasked (time.time()), for `/healthz` and logs."""
        self._stopping = threading.Event()
        self.process, self.nudges = self._spawn()
        self._watcher = threading.Thread(
            target=self._watch, name="runbook-worker-watch", daemon=True
        )
        self._watcher.start()

    def _spawn(self) -> tuple[multiprocessing.process.BaseProcess, Connection]:
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_main,
            args=(self.settings, self.library, self.threads, receiver, os.getpid()),
            name="runbook-workers",
            daemon=True,
        )
        # Started with Ctrl-C ignored, which a new process inherits: the signal reaching the
        # group while the child is still importing would otherwise end it with a traceback.
        with _sigint_ignored():
            process.start()
        receiver.close()
        return process, sender

    def _watch(self) -> None:
        pause = WATCH_S
        while not self._stopping.wait(pause):
            if self.process.is_alive():
                pause = WATCH_S
                continue
            # One that dies at once again (a broken library, a full disk) is restarted less and
            # less often, not in a tight loop.
            quick = self.last_death is not None and time.time() - self.last_death < 10 * WATCH_S
            pause = min(pause * 2, 30.0) if quick else WATCH_S
            with self.lock:
                if self._stopping.is_set():
                    return
                dead = self.process
                self.last_death = time.time()
                self.restarts += 1
                LOG.error(
                    "the worker process %s died (exit code %s); starting another",
                    dead.pid,
                    dead.exitcode,
                )
                self.nudges.close()
                self.process, self.nudges = self._spawn()
            # Its jobs are nobody's now: queue them again rather than wait out their leases
            # (outside the lock: queueing nudges the new process, which takes the lock).
            try:
                self.intake.release(f"{dead.pid}:")
            except Exception as error:  # their leases run out instead, and they run then
                LOG.warning("could not queue the dead worker's jobs again: %s", error)

    def nudge(self) -> None:
        """Tell the worker process there is new work (never blocks the caller for long)."""
        # A gone worker loses nothing: the work stays queued on disk for the next start.
        with self.lock, contextlib.suppress(OSError):
            self.nudges.send_bytes(b"")

    def stop(self, timeout: float = 60.0) -> None:
        """Close the pipe and wait for running jobs to finish."""
        self._stopping.set()
        with self.lock:
            self.nudges.close()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)


def start_worker_process(
    settings: Settings, library: Path, intake: Intake, threads: int
) -> WorkerProcess:
    """Spawn the worker process, watched, and connect the intake's new-work signal to it."""
    handle = WorkerProcess(settings, library, intake, threads)
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
