"""Worker recovery: how long from a worker process's death (SIGKILL, mid-step) until its job
runs again, and until its incident finishes, beside what a fresh start costs in the same run.

The server's watcher sees the death, spawns a new worker process, and queues the dead one's
jobs again at once (no waiting out their leases). Baselines: a bare spawned Python process that
imports the engine's server modules and says it is ready (the floor of any restart), and the
time a healthy worker takes from an accepted alert to the start of its first step.

    .venv/bin/python bench/worker_recovery.py --rounds 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import warm_server

sys.path.insert(0, str(Path(__file__).parent.parent))

RUNBOOK = """---
id: slow
title: Slow to mend
kind: outage
severity: sev3
version: 1
owner: "#ops"
triggers:
  alerts:
    - source: generic
      match: {alertname: Slow}
---
# Slow to mend

```step
id: wait
uses: shell.run
with: {argv: [sleep, "2"]}
```

```step
id: note
uses: evidence.note
with: {text: mended}
```
"""


def _ready(pipe: object) -> None:
    import flows.triggers.server  # noqa: F401 - what a worker process imports before it works

    pipe.send(True)  # type: ignore[attr-defined]


def bare_restart() -> float:
    """Spawn a process that imports the server modules and answers: the floor of a restart."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    began = time.perf_counter()
    process = context.Process(target=_ready, args=(sender,))
    process.start()
    receiver.recv()
    elapsed = time.perf_counter() - began
    process.join()
    return elapsed


def wait_until(condition: Callable[[], bool], timeout: float = 120.0) -> float:
    began = time.perf_counter()
    while not condition():
        if time.perf_counter() - began > timeout:
            raise SystemExit("timed out")
        time.sleep(0.01)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="runbook-bench-recovery-"))
    warm_server(work / "server-home")
    from flows.engine.routing import route_alert
    from flows.engine.settings import Settings
    from flows.evidence.verify import read_records
    from flows.triggers.server import load_library, make_server
    from flows.triggers.worker_process import start_worker_process
    from integrations.alerts import Alert

    library = work / "library"
    library.mkdir()
    (library / "slow.md").write_text(RUNBOOK)
    home = work / "home"
    settings = Settings(home=home, prefect="external")
    runbooks = load_library(library)
    server = make_server(settings, runbooks, dev=False)
    intake = server.state.intake
    worker = start_worker_process(settings, library, intake, threads=2)

    def accept(n: int) -> Path:
        alert = Alert(
            source="generic", identity=f"slow-{n}", status="firing", labels={"alertname": "Slow"}
        )
        [incident] = intake.accept_alerts(
            "generic", [alert], lambda a: route_alert(a, runbooks)
        ).started
        return home / "incidents" / incident

    def starts(folder: Path) -> int:
        if not folder.exists():
            return 0
        return sum(
            1 for r in read_records(folder) if r.event == "step.started" and r.step == "wait"
        )

    def finished(folder: Path) -> bool:
        return folder.exists() and any(r.event == "run.finished" for r in read_records(folder))

    fresh, again, done, floor = [], [], [], []
    for n in range(args.rounds):
        folder = accept(n)
        fresh.append(wait_until(lambda f=folder: starts(f) == 1))
        os.kill(worker.process.pid, signal.SIGKILL)
        began = time.perf_counter()
        wait_until(lambda f=folder: starts(f) == 2)
        again.append(time.perf_counter() - began)
        wait_until(lambda f=folder: finished(f))
        done.append(time.perf_counter() - began)
        floor.append(bare_restart())
    worker.stop(timeout=10)

    def ms(samples: list[float]) -> str:
        values = sorted(s * 1000 for s in samples)
        return f"median {statistics.median(values):.0f} ms, max {values[-1]:.0f} ms"

    print(f"rounds: {args.rounds} (worker process killed with SIGKILL in the middle of a step)")
    print(f"death -> the job's step runs again:   {ms(again)}")
    print(f"death -> the incident finished:        {ms(done)} (the step sleeps 2 s)")
    print(f"baseline, healthy worker, alert -> step starts: {ms(fresh)}")
    print(f"baseline, bare spawned process importing the server modules: {ms(floor)}")
    print(f"worker restarts seen by the server: {worker.restarts}")


if __name__ == "__main__":
    main()
