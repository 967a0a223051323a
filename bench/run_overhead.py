"""(a) Engine overhead per step: a compiled runbook vs a hand-written Prefect flow, same actions.

Both run in this process against the same warm local Prefect server. The hand-written flow
calls the same local ticket store and outbox from one task per step; the engine adds parsing,
templating, argument validation and the fsynced evidence ledger.

Prints three per-step ratios, engine over bare:
- the median step-to-step time: each step's own cost, from the end of the step before; a stall
  of the Prefect server falls on a few steps and leaves the median alone;
- the marginal cost per step, from the short run to the long one (a difference of medians, so
  the noisiest), also paired round by round;
- the whole long run over its steps, which also carries what each run costs once: the incident
  folder and plan check, the incident-named flow run, the two artifacts.

    .venv/bin/python bench/run_overhead.py --steps 25 --rounds 11
"""

from __future__ import annotations

import argparse
import itertools
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
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.md"
    path.write_text("".join(parts))
    return path


def bare_flow(home: Path, steps: int, marks: list[float] | None = None):
    """The same local actions as a hand-written Prefect flow with one task per step.

    `marks`, when given, gets the wall-clock time at which each step's task returned.
    """
    marks = [] if marks is None else marks
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from flows.contract.ports import NewTicket
    from integrations.backends import local_backends

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
    def bare(incident: str) -> None:
        key = open_ticket(incident)
        marks.append(time.time())
        for n in range(1, steps):
            (post if n % 2 else comment)(incident, key, n)
            marks.append(time.time())

    return bare


def run_bare(bare, incident: str) -> None:
    """Run the baseline the way the engine runs its flows: sync, flow heartbeat off."""
    from flows.engine.compile import heartbeat_off

    with heartbeat_off():
        bare(incident)


def median(samples: list[float]) -> float:
    return sorted(samples)[len(samples) // 2]


def gaps(marks: list[float]) -> list[float]:
    """Seconds from each step's end to the next one's: one step's whole cost, stalls apart."""
    return [later - earlier for earlier, later in itertools.pairwise(marks)]


def step_marks(evidence: Path) -> list[float]:
    """When the engine recorded each step as succeeded, from the incident's ledger."""
    from flows.evidence.records import Event
    from flows.evidence.verify import read_records

    return [
        record.at.timestamp()
        for record in read_records(evidence)
        if record.event is Event.STEP_SUCCEEDED
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--small", type=int, default=5, help="steps of the short run (slope)")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds the server gets between runs"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="runbook-bench-"))
    warm_server(work / "server-home")
    from flows.engine.runner import start_run
    from flows.engine.settings import Settings

    settings = Settings(home=work / "engine", prefect="external")
    sizes = (args.small, args.steps)
    runbooks = {n: write_runbook(work / f"rb{n}", n) for n in sizes}
    bare_marks: list[float] = []
    bares = {n: bare_flow(work / "bare", n, bare_marks) for n in sizes}
    engine: dict[int, list[float]] = {n: [] for n in sizes}
    bare: dict[int, list[float]] = {n: [] for n in sizes}
    engine_gaps: list[float] = []
    bare_gaps: list[float] = []
    for n in sizes:  # warm both paths once: imports, flow and task registration
        start_run(settings, runbooks[n], {}, incident_id=f"warm-engine-{n}")
        run_bare(bares[n], f"warm-bare-{n}")

    def run_engine(n: int, r: int) -> None:
        started = time.perf_counter()
        outcome = start_run(settings, runbooks[n], {}, incident_id=f"engine-{n}-{r}")
        engine[n].append(time.perf_counter() - started)
        assert outcome.status == "succeeded", outcome
        engine_gaps.extend(gaps(step_marks(outcome.evidence)))

    def run_baseline(n: int, r: int) -> None:
        bare_marks.clear()
        started = time.perf_counter()
        run_bare(bares[n], f"bare-{n}-{r}")
        bare[n].append(time.perf_counter() - started)
        bare_gaps.extend(gaps(bare_marks))

    for r in range(args.rounds):  # interleaved, so machine noise hits both alike
        # Every other round the baseline goes first: whatever a run leaves behind (the server
        # still persisting its events) falls on engine and bare alike.
        order = (run_engine, run_baseline) if r % 2 == 0 else (run_baseline, run_engine)
        for n in sizes:
            for run in order:
                # The Prefect server persists each run's events after the run returns; left no
                # time to, that backlog lands on whichever run comes next.
                time.sleep(args.settle)
                run(n, r)

    big, small = args.steps, args.small
    print(f"rounds: {args.rounds}; runs of {small} and {big} steps")
    for n in sizes:
        print(f"engine run, {n:>2} steps   : {summary(engine[n])}")
        print(f"bare Prefect, {n:>2} steps : {summary(bare[n])}")
    whole = (median(engine[big]) / big) / (median(bare[big]) / big)
    engine_step = (median(engine[big]) - median(engine[small])) / (big - small)
    bare_step = (median(bare[big]) - median(bare[small])) / (big - small)
    print(
        f"per step, whole {big}-step run: engine {median(engine[big]) / big * 1000:.1f} ms,"
        f" bare {median(bare[big]) / big * 1000:.1f} ms, ratio {whole:.3f}"
    )
    print(
        f"per step, marginal ({small}->{big} steps): engine {engine_step * 1000:.1f} ms,"
        f" bare {bare_step * 1000:.1f} ms, ratio {engine_step / bare_step:.3f}"
    )
    # Rounds run engine and bare back to back, so a slow phase of the machine or of the Prefect
    # server hits both alike: the ratio per round, then its median, is the steadier figure.
    paired_whole = [e / b for e, b in zip(engine[big], bare[big], strict=True)]
    paired_step = [
        (e_big - e_small) / (b_big - b_small)
        for e_big, e_small, b_big, b_small in zip(
            engine[big], engine[small], bare[big], bare[small], strict=True
        )
        if b_big > b_small
    ]
    print(
        f"paired by round (median of {len(paired_whole)}): whole {big}-step run ratio"
        f" {median(paired_whole):.3f}, marginal per step ratio {median(paired_step):.3f}"
    )
    # Every step's own time, from the end of the one before: a stall of the Prefect server
    # lands on a few steps and leaves the median alone, where it moves a whole run's time.
    engine_gap, bare_gap = median(engine_gaps), median(bare_gaps)
    print(
        f"per step, median step-to-step time over {len(engine_gaps)} steps: engine"
        f" {engine_gap * 1000:.2f} ms, bare {bare_gap * 1000:.2f} ms,"
        f" ratio {engine_gap / bare_gap:.3f}"
    )
    fixed_engine = median(engine[small]) - small * engine_step
    fixed_bare = median(bare[small]) - small * bare_step
    print(
        f"fixed cost per run: engine {fixed_engine * 1000:.0f} ms, bare {fixed_bare * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
