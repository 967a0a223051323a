"""Alert to first Slack message: p50/p99 over many alerts, beside the bare Prefect floor.

The trigger server runs in this process over real HTTP (uvicorn), with its worker process and
the real slack_sdk client pointed at a loopback fake Slack. Each alert is a new incident of a
runbook whose first step posts to Slack; the time is from sending the webhook to the fake receiving
`chat.postMessage`. The floor, measured in the same run against the same Prefect server, is an
async flow called in-process: time from the call to its first task's body.

    .venv/bin/python bench/alert_latency.py --alerts 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import warm_server

sys.path.insert(0, str(Path(__file__).parent.parent))

RUNBOOK = """---
id: page
title: Page the on-call
kind: outage
severity: sev2
version: 1
owner: "#ops"
inputs:
  host: {type: string, required: true}
triggers:
  alerts:
    - source: generic
      match: {alertname: HostDown}
      inputs: {host: "{{ alert.labels.instance }}"}
---
# Page the on-call

```step
id: page
uses: slack.post
with:
  channel: "#ops"
  text: "HostDown {{ inputs.host }}"
```
"""


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{name:<34} p50 {percentile(ms, 50):7.1f} ms  p99 {percentile(ms, 99):7.1f} ms"
        f"  mean {statistics.fmean(ms):7.1f} ms  (n={len(ms)})"
    )


def prefect_floor(runs: int) -> list[float]:
    """Call-to-first-task-body of an async flow in this process."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    reached: list[float] = []

    @task(cache_policy=NO_CACHE, persist_result=False)
    def first() -> None:
        reached.append(time.perf_counter())

    @flow(persist_result=False)
    async def floor() -> None:
        first()

    async def measure() -> list[float]:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            await floor()
            samples.append(reached[-1] - started)
        return samples

    asyncio.run(measure())  # warm-up
    return asyncio.run(measure())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=200)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="runbook-bench-alerts-"))
    warm_server(work / "server-home")
    from pydantic import SecretStr

    from flows.engine.settings import Settings
    from flows.triggers.app import build_app
    from flows.triggers.server import load_library, make_server
    from flows.triggers.worker_process import start_worker_process
    from tests.fakes.slack_server import FakeSlack, serve_slack
    from tests.support import serve_in_thread

    library = work / "library"
    library.mkdir()
    (library / "page.md").write_text(RUNBOOK)
    posted: dict[str, float] = {}
    arrived = threading.Condition()

    class TimedSlack(FakeSlack):
        def api_chat_postMessage(self, body):  # type: ignore[no-untyped-def]
            answer = super().api_chat_postMessage(body)
            with arrived:
                posted[str(body.get("text", "")).split()[-1]] = time.perf_counter()
                arrived.notify_all()
            return answer

    with serve_slack(TimedSlack()) as slack:
        slack.add_channel("ops")
        settings = Settings(
            home=work / "home",
            prefect="external",
            webhook_token=SecretStr("t"),
            slack_bot_token=SecretStr(slack.token),
            slack_api_url=slack.url,
        )
        server = make_server(settings, load_library(library), dev=False)
        worker = start_worker_process(settings, library, server.state.intake, threads=2)
        with serve_in_thread(build_app(server.state)) as url, httpx.Client() as client:
            latencies: list[float] = []
            for n in range(args.alerts + 5):
                host = f"host-{n}"
                body = {"id": f"down-{n}", "labels": {"alertname": "HostDown", "instance": host}}
                started = time.perf_counter()
                answer = client.post(
                    f"{url}/alerts/generic",
                    content=json.dumps(body),
                    headers={"Authorization": "Bearer t"},
                )
                assert answer.status_code == 202, answer.text
                with arrived:
                    arrived.wait_for(lambda host=host: host in posted, timeout=30)
                if n >= 5:  # the first few warm up imports and Prefect's caches
                    latencies.append(posted[host] - started)
        worker.stop()
    floor = prefect_floor(args.alerts)
    print(line("alert -> first Slack message", latencies))
    print(line("Prefect floor (call -> first task)", floor))
    ratio = percentile(latencies, 50) / percentile(floor, 50)
    print(f"p50 ratio to the floor: {ratio:.2f}")


if __name__ == "__main__":
    main()
