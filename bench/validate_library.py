"""(c) Whole-process time of `runbook validate` on 200 runbooks (copies of the library).

The engine's modules are byte-compiled first, as an installed package is: without that (an
editable install under PYTHONDONTWRITEBYTECODE) every run compiles them from source again,
which costs about a tenth of a second.

.venv/bin/python bench/validate_library.py --count 200
"""

from __future__ import annotations

import argparse
import compileall
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import summary

PROJECT = Path(__file__).parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    sources = sorted(p for p in (PROJECT / "runbooks").rglob("*.md") if p.name != "README.md")
    folder = Path(tempfile.mkdtemp(prefix="runbook-bench-validate-"))
    for n in range(args.count):
        source = sources[n % len(sources)]
        text = source.read_text()
        original = text.split("\nid: ", 1)[1].split("\n", 1)[0]
        # Ids and Slack commands must be unique across a library: give each copy its own.
        text = text.replace(f"\nid: {original}\n", f"\nid: {original}-{n}\n", 1)
        text = re.sub(r"(command:\s*)([\w-]+)", rf"\g<1>\g<2>-{n}", text, count=1)
        (folder / f"{n:03d}-{source.name}").write_text(text)
    for package in ("flows", "integrations"):
        compileall.compile_dir(PROJECT / package, quiet=1)
    times = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "flows.cli", "validate", str(folder)],
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(result.stdout[-2000:] + result.stderr[-2000:])
    baseline = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - started)
    print(f"validate {args.count} runbooks, whole process: {summary(times)}")
    print(f"bare `python -c pass` for reference          : {summary(baseline)}")


if __name__ == "__main__":
    main()
