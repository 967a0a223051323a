"""(b) Whole-process time of `runbook run` (5 steps) vs a bare Prefect process doing the same.

Also times the README's main job, a warm `runbook run` of the outage runbook. The first `runbook
run` of a fresh home starts the engine's local Prefect server (reported separately as the cold
start); every later process reuses it, as does the bare baseline.

    .venv/bin/python bench/cli_startup.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import summary
from run_overhead import write_runbook

BENCH = Path(__file__).parent
PROJECT = BENCH.parent


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    result = subprocess.run(
        argv, env=env, cwd=PROJECT, capture_output=True, stdin=subprocess.DEVNULL
    )
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 3):
        sys.stderr.write(result.stderr.decode()[-2000:])
        raise SystemExit(f"{argv} exited {result.returncode}")
    return elapsed, result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="runbook-bench-cli-"))
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(RUNBOOK_HOME=str(home), RUNBOOK_PREFECT="local-server")
    runbook = write_runbook(work, 5)
    cli = [sys.executable, "-m", "flows.cli"]

    cold, _ = timed([*cli, "run", str(runbook), "--incident", "cold"], env)
    from flows.prefect.local_server import read_server

    server = read_server(home)
    assert server is not None
    bare_env = {**env, "PREFECT_API_URL": server.url, "PREFECT_HOME": str(home / "prefect")}

    engine, bare, outage = [], [], []
    for n in range(args.rounds):
        engine.append(timed([*cli, "run", str(runbook), "--incident", f"e{n}"], env)[0])
        bare.append(
            timed(
                [sys.executable, str(BENCH / "bare_process.py"), str(work / "bare"), "5", f"b{n}"],
                bare_env,
            )[0]
        )
        outage.append(
            timed(
                [
                    *cli,
                    "run",
                    "runbooks/outage/service-outage.md",
                    "--input",
                    "service=checkout",
                    "--incident",
                    f"o{n}",
                ],
                env,
            )[0]
        )
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    print(f"cold first `runbook run` (starts the local Prefect server): {cold:.2f} s")
    print(f"`runbook run` 5 steps, warm      : {summary(engine)}")
    print(f"bare Prefect process, 5 tasks    : {summary(bare)}")
    print(f"ratio engine/bare (median)       : {median(engine) / median(bare):.3f}")
    print(f"`runbook run` outage runbook, warm: {summary(outage)}")
    from flows.prefect.local_server import stop_server

    stop_server(home)


if __name__ == "__main__":
    main()
