"""(a) Engine overhead per step: a compiled runbook vs a hand-written Prefect flow, same actions.

Both run in this process against the same warm local Prefect server. The hand-written flow
calls the same local ticket store and outbox from one task per step; the engine adds parsing,
templating, argument validation and the fsynced evidence ledger. Prints the ratio.

    .venv/bin/python bench/run_overhead.py --steps 20 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from _common import summary, warm_server


def write_runbook(folder: Path, steps: int) -> Path:
    """A runbook alternating ticket comments and chat posts, after one ticket."""
    parts = [
        "---\nid: bench\ntitle: Bench\nkind: other\nseverity: sev3\nversion: 1\nowner: '#b'\n---\n",
        "# Bench\n```step\nid: ticket\nuses: jira.create_issue\nwith:\n"
        "  project: OPS\n  summary: bench {{ incident.id }}\n```\n",
    ]
    for n in range(1, steps):
        if n % 2:
            parts.append(
                f"```step\nid: post{n}\nuses: slack.post\nwith:\n  channel: '#b'\n"
                f"  text: 'step {n} of {{{{ incident.id }}}} {{{{ steps.ticket.key }}}}'\n```\n"
            )
        else:
            parts.append(
                f"```step\nid: comment{n}\nuses: jira.comment\nwith:\n"
                f"  issue: '{{{{ steps.ticket.key }}}}'\n  body: 'step {n}'\n```\n"
            )
    path = folder / "bench.md"
    path.write_text("".join(parts))
    return path


def bare_flow(home: Path, steps: int):
    """The same local actions as a hand-written Prefect flow with one task per step."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from integrations.backends import local_backends
    from integrations.protocols import NewTicket

    backends = local_backends(home, echo=lambda _text: None)

    @task(cache_policy=NO_CACHE, persist_result=False)
    def open_ticket(incident: str) -> str:
        ticket = NewTicket(project="OPS", summary=f"bench {incident}", incident=incident)
        return backends.tickets.create_issue(ticket, f"{incident}:ticket").key

    @task(cache_policy=NO_CACHE, persist_result=False)
    def post(incident: str, key: str, n: int) -> str:
        return backends.chat.post("#b", f"step {n} of {incident} {key}", f"{incident}:post{n}").ts

    @task(cache_policy=NO_CACHE, persist_result=False)
    def comment(incident: str, key: str, n: int) -> str:
        return backends.tickets.comment(key, f"step {n}", f"{incident}:comment{n}")

    @flow(name="bench-bare", persist_result=False)
    async def bare(incident: str) -> None:
        key = open_ticket(incident)
        for n in range(1, steps):
            (post if n % 2 else comment)(incident, key, n)

    return bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="runbook-bench-"))
    warm_server(work / "server-home")
    from flows.runner import start_run
    from flows.settings import Settings

    runbook = write_runbook(work, args.steps)
    settings = Settings(home=work / "engine", prefect="external")
    bare = bare_flow(work / "bare", args.steps)

    engine_times: list[float] = []
    bare_times: list[float] = []
    # Warm both paths once (imports, flow registration), then interleave rounds.
    start_run(settings, runbook, {}, incident_id="warm-engine")
    asyncio.run(bare("warm-bare"))
    for n in range(args.rounds):
        started = time.perf_counter()
        outcome = start_run(settings, runbook, {}, incident_id=f"engine-{n}")
        engine_times.append(time.perf_counter() - started)
        assert outcome.status == "succeeded", outcome
        started = time.perf_counter()
        asyncio.run(bare(f"bare-{n}"))
        bare_times.append(time.perf_counter() - started)

    per_engine = [t / args.steps for t in engine_times]
    per_bare = [t / args.steps for t in bare_times]
    engine_median = sorted(per_engine)[len(per_engine) // 2]
    bare_median = sorted(per_bare)[len(per_bare) // 2]
    print(f"steps per run: {args.steps}, rounds: {args.rounds}")
    print(f"engine run        : {summary(engine_times)}")
    print(f"bare Prefect run  : {summary(bare_times)}")
    print(f"engine per step   : {summary(per_engine)}")
    print(f"bare per step     : {summary(per_bare)}")
    print(f"ratio engine/bare (median per step): {engine_median / bare_median:.3f}")


if __name__ == "__main__":
    main()
