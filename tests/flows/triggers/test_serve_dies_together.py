"""`runbook serve` and its worker process live and die together, as users run them: a worker
process killed mid-run is started again and the incident it was running finishes, once; a
server killed with SIGKILL takes its worker process (and the step's child) with it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from flows.evidence.records import Event
from flows.evidence.verify import read_records
from tests.flows.triggers.test_serve_process import free_port
from tests.support import PROJECT, RUNBOOK_CLI, cli_env

pytestmark = pytest.mark.usefixtures("prefect_api")

RUNBOOK = """---
id: slow
title: Slow to mend
kind: outage
severity: sev3
version: 1
owner: "#ops"
inputs:
  seconds: {type: string, default: "4"}
triggers:
  alerts:
    - source: generic
      match: {alertname: Slow}
      inputs: {seconds: "{{ alert.labels.seconds }}"}
---
# Slow to mend

## Wait
```step
id: wait
uses: shell.run
with: {argv: [sleep, "{{ inputs.seconds }}"]}
```

## Note
```step
id: note
uses: evidence.note
with: {text: mended}
```
"""


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.2)


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def worker_of(server: int) -> int | None:
    """The server's spawned worker process (not multiprocessing's resource tracker)."""
    for child in children(server):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            return child
    return None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def start_serving(home: Path, library: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    """`runbook serve` over `library` on a free port, once it answers /healthz with 200."""
    port = free_port()
    with log.open("a") as out:  # the server keeps its own copy of the file
        server = subprocess.Popen(
            [*RUNBOOK_CLI, "serve", "--dev", "--port", str(port), "--runbooks", str(library)],
            cwd=PROJECT,
            env=cli_env(home),
            stdout=subprocess.DEVNULL,
            stderr=out,
            text=True,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            assert server.poll() is None, log.read_text()
            return False

    try:
        wait_for(healthy, what="a healthy server")
    except BaseException:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
        raise
    return server, url


def stop_serving(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGKILL)
    server.wait(10)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "library"
    folder.mkdir()
    (folder / "slow.md").write_text(RUNBOOK)
    return folder


@pytest.fixture
def served(
    home: Path, library: Path, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    server, url = start_serving(home, library, tmp_path / "serve.log")
    try:
        yield server, url
    finally:
        stop_serving(server)


def in_step(folder: Path, times: int = 1) -> bool:
    """Whether the `wait` step has started `times` times."""
    if not folder.exists():
        return False
    started = [r for r in read_records(folder) if r.event is Event.STEP_STARTED]
    return sum(1 for r in started if r.step == "wait") >= times


def test_a_killed_worker_process_is_replaced_and_its_incident_finishes_once(
    served: tuple[subprocess.Popen[str], str], home: Path
) -> None:
    server, url = served
    answer = httpx.post(
        f"{url}/alerts/generic",
        json={"id": "slow-1", "labels": {"alertname": "Slow", "seconds": "4"}},
    )
    assert answer.status_code == 202, answer.text
    [incident] = answer.json()["started"]
    folder = home / "incidents" / incident

    wait_for(lambda: in_step(folder), what="the step to start")
    first = worker_of(server.pid)
    assert first is not None
    os.kill(first, signal.SIGKILL)

    def finished() -> bool:
        return any(r.event is Event.RUN_FINISHED for r in read_records(folder))

    wait_for(finished, what="the incident to finish on the new worker")
    records = read_records(folder)
    assert [r.data["status"] for r in records if r.event is Event.RUN_FINISHED] == ["succeeded"]
    assert [r.step for r in records if r.event is Event.STEP_SUCCEEDED] == ["wait", "note"]
    second = worker_of(server.pid)
    assert second is not None and second != first
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200


def test_a_server_killed_with_sigkill_takes_its_worker_process_with_it(
    served: tuple[subprocess.Popen[str], str], home: Path
) -> None:
    """Killed mid-run, the server leaves no worker process behind to hold the incident's run
    lock (it used to finish the running step first, or run on as an orphan)."""
    server, url = served
    body = {"id": "slow-2", "labels": {"alertname": "Slow", "seconds": "60"}}
    [incident] = httpx.post(f"{url}/alerts/generic", json=body).json()["started"]
    folder = home / "incidents" / incident
    wait_for(
        lambda: (
            folder.exists()
            and any(
                r.event is Event.STEP_STARTED and r.step == "wait" for r in read_records(folder)
            )
        ),
        what="the step to start",
    )
    worker = worker_of(server.pid)
    assert worker is not None and alive(worker)
    os.kill(server.pid, signal.SIGKILL)
    server.wait(10)
    wait_for(lambda: not alive(worker), timeout=5, what="the worker process to die")


def test_a_server_killed_mid_run_and_started_again_finishes_the_incident_once(
    home: Path, library: Path, tmp_path: Path
) -> None:
    """The testers' stranded incident: kill -9 of `runbook serve` mid-step used to leave an
    orphan holding the run lock, and the next server's job failed "being run by process N".
    Now the next server resumes the incident and it finishes, each step once."""
    log = tmp_path / "serve.log"
    server, url = start_serving(home, library, log)
    try:
        body = {"id": "slow-3", "labels": {"alertname": "Slow", "seconds": "4"}}
        [incident] = httpx.post(f"{url}/alerts/generic", json=body).json()["started"]
        folder = home / "incidents" / incident
        wait_for(lambda: in_step(folder), what="the step to start")
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
    finally:
        stop_serving(server)
    again, _ = start_serving(home, library, log)
    try:
        wait_for(
            lambda: any(r.event is Event.RUN_FINISHED for r in read_records(folder)),
            what="the incident to finish on the next server",
        )
    finally:
        stop_serving(again)
    records = read_records(folder)
    assert [r.data["status"] for r in records if r.event is Event.RUN_FINISHED] == ["succeeded"]
    assert [r.step for r in records if r.event is Event.STEP_SUCCEEDED] == ["wait", "note"]
    assert "being run by" not in log.read_text()


def test_sigterm_stops_the_server_after_its_workers_finish_the_running_step(
    served: tuple[subprocess.Popen[str], str], home: Path, tmp_path: Path
) -> None:
    """What systemd, `docker stop` and Kubernetes send: the server stops taking requests, its
    worker process finishes the run it is in, and it exits 0 without a traceback."""
    server, url = served
    body = {"id": "slow-4", "labels": {"alertname": "Slow", "seconds": "3"}}
    [incident] = httpx.post(f"{url}/alerts/generic", json=body).json()["started"]
    folder = home / "incidents" / incident
    wait_for(lambda: in_step(folder), what="the step to start")
    os.kill(server.pid, signal.SIGTERM)
    assert server.wait(60) == 0
    records = read_records(folder)
    assert [r.data["status"] for r in records if r.event is Event.RUN_FINISHED] == ["succeeded"]
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
