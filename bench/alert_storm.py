"""Alert storm: many deliveries over few identities. Webhook answer times, incidents, losses.

10,000 Alertmanager-style deliveries over 500 alert identities arrive over 16 concurrent
keep-alive connections, from a separate process so they do not share the server's interpreter,
at the trigger server (real HTTP; its worker process running the runs meanwhile). Every 2xx
must be durably recorded, exactly one incident must open per identity, and every incident must
run to its end afterwards. With `--kill-worker-every S` the worker process is killed with
SIGKILL every S seconds during the storm: the server starts another and nothing may be lost.

    .venv/bin/python bench/alert_storm.py --deliveries 10000 --identities 500
    .venv/bin/python bench/alert_storm.py --kill-worker-every 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
from _common import warm_server

sys.path.insert(0, str(Path(__file__).parent.parent))

RUNBOOK = """---
id: storm
title: Storm target
kind: outage
severity: sev3
version: 1
owner: "#ops"
inputs:
  host: {type: string, required: true}
triggers:
  alerts:
    - source: alertmanager
      match: {alertname: Storm}
      inputs: {host: "{{ alert.labels.instance }}"}
---
# Storm target

```step
id: note
uses: evidence.note
with:
  text: "storm alert for {{ inputs.host }}"
```
"""


def payload(identity: int) -> bytes:
    labels = {"alertname": "Storm", "instance": f"host-{identity}"}
    return json.dumps(
        {
            "version": "4",
            "groupKey": f'{{}}:{{instance="host-{identity}"}}',
            "status": "firing",
            "receiver": "runbook",
            "groupLabels": labels,
            "commonLabels": labels,
            "commonAnnotations": {},
            "externalURL": "http://am",
            "truncatedAlerts": 0,
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {},
                    "startsAt": "2026-11-26T10:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": f"{identity:016x}",
                }
            ],
        }
    ).encode()


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def drive(url: str, bodies: list[bytes], senders: int) -> list[tuple[int, float]]:
    """Send every body over `senders` keep-alive connections; (status, seconds) per delivery.

    The senders are raw HTTP/1.1 on one asyncio loop, so what is timed is the server's answer,
    not a client library's own work (sixteen httpx threads spend more CPU than the server does
    and queue behind their own GIL, which would be counted as server latency).
    """
    return asyncio.run(_drive(url, bodies, senders))


async def _drive(url: str, bodies: list[bytes], senders: int) -> list[tuple[int, float]]:
    host, port = httpx.URL(url).host, httpx.URL(url).port
    head = (
        f"POST /alerts/alertmanager HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Authorization: Bearer t\r\nContent-Type: application/json\r\n"
    ).encode()
    answers: list[tuple[int, float]] = [(0, 0.0)] * len(bodies)
    queue = iter(range(len(bodies)))

    async def sender() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        for n in queue:
            body = bodies[n]
            started = time.perf_counter()
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            answers[n] = (int(status_line.split()[1]), time.perf_counter() - started)
        writer.close()

    await asyncio.gather(*(sender() for _ in range(senders)))
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--identities", type=int, default=500)
    parser.add_argument("--senders", type=int, default=16)
    parser.add_argument(
        "--no-runs", action="store_true", help="do not run flows during the storm (intake alone)"
    )
    parser.add_argument(
        "--kill-worker-every",
        type=float,
        default=0.0,
        help="kill the worker process with SIGKILL every this many seconds during the storm",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="runbook-bench-storm-"))
    warm_server(work / "server-home")
    from pydantic import SecretStr

    from flows.engine.settings import Settings
    from flows.triggers.app import build_app
    from flows.triggers.serve import freeze_startup_objects
    from flows.triggers.server import load_library, make_server
    from flows.triggers.worker_process import start_worker_process
    from tests.support import serve_in_thread

    library = work / "library"
    library.mkdir()
    (library / "storm.md").write_text(RUNBOOK)
    home = work / "home"
    settings = Settings(home=home, prefect="external", webhook_token=SecretStr("t"))
    server = make_server(settings, load_library(library), dev=False)
    worker = (
        None
        if args.no_runs
        else start_worker_process(settings, library, server.state.intake, threads=2)
    )
    rng = random.Random(1)
    order = [n % args.identities for n in range(args.deliveries)]
    rng.shuffle(order)
    bodies = [payload(identity) for identity in order]
    freeze_startup_objects()  # as `runbook serve` does before it serves
    storming = threading.Event()
    kills = 0

    def chaos() -> None:
        nonlocal kills
        while worker is not None and not storming.wait(args.kill_worker_every):
            os.kill(worker.process.pid, signal.SIGKILL)
            kills += 1

    killer = threading.Thread(target=chaos, daemon=True)
    with serve_in_thread(build_app(server.state)) as url:
        started = time.perf_counter()
        if args.kill_worker_every > 0:
            killer.start()
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn) as load:
            answers = load.submit(drive, url, bodies, args.senders).result()
        elapsed = time.perf_counter() - started
        storming.set()
        drained = _drain(home / "intake.db") if worker is not None else None
    if worker is not None:
        worker.stop(timeout=5)
    ok = [t for status, t in answers if status == 202]
    with sqlite3.connect(home / "intake.db") as db:
        incidents = db.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
        recorded = db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE outcome IN ('started', 'joined')"
        ).fetchone()[0]
    ms = [t * 1000 for t in ok]
    print(
        f"deliveries {args.deliveries} over {args.identities} identities, {args.senders} senders,"
        f" {elapsed:.1f} s ({args.deliveries / elapsed:.0f}/s)"
    )
    print(
        f"answered 2xx: {len(ok)}; webhook answer p50 {percentile(ms, 50):.1f} ms,"
        f" p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms"
    )
    print(f"incidents started: {incidents} (expected {args.identities})")
    print(
        f"alerts recorded durably: {recorded} of {len(ok)} acknowledged"
        f" ({'nothing lost' if recorded == len(ok) else 'LOST SOME'})"
    )
    if drained is not None:
        ran, seconds = drained
        print(
            f"incidents whose start job ran to its end: {ran} of {incidents}, {seconds:.1f} s"
            f" after the storm; worker process killed {kills} time(s), restarted"
            f" {worker.restarts if worker else 0}"
        )


def _drain(intake: Path, timeout: float = 600.0) -> tuple[int, float]:
    """Wait until no job is pending or running; how many start jobs are done, and how long."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        with sqlite3.connect(intake) as db:
            left = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')"
            ).fetchone()[0]
        if not left:
            break
        time.sleep(0.5)
    with sqlite3.connect(intake) as db:
        done = db.execute(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'start' AND state = 'done'"
        ).fetchone()[0]
    return int(done), time.perf_counter() - began


if __name__ == "__main__":
    main()
