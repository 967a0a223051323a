"""Evidence ledger throughput: fsynced records/s, beside a bare write+flush+fsync loop.

The ledger turns every record into plain JSON, redacts it, takes the lock, reads the head, hashes
and chains the record, fsyncs the line and updates the head. The baseline writes the very same lines
with nothing but `write`, `flush` and `os.fsync`, in the same run on the same disk, so the ratio
is the ledger's own cost. Prints, never asserts.

    .venv/bin/python bench/ledger_bench.py --records 5000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from flows.evidence.ledger import Ledger
from flows.evidence.records import LEDGER_FILE, Event, RunbookRef
from flows.evidence.redact import Redactor

RUNBOOK = RunbookRef(id="credential-leak", version=3, sha256="0" * 64)


def ledger_rate(folder: Path, records: int) -> float:
    """Records/s appended through the ledger; a realistic mix with a header to redact."""
    redactor = Redactor(secrets=["bench-secret-value"])
    with Ledger(folder, "INC-BENCH", RUNBOOK, redactor) as ledger:
        start = time.perf_counter()
        for n in range(records):
            if n % 2:
                data = {"outputs": {"key": f"SEC-{n}", "url": f"http://jira.local/browse/SEC-{n}"}}
                ledger.record(Event.STEP_SUCCEEDED, step=f"step{n}", data=data)
            else:
                headers = {"Authorization": "Bearer bench-secret-value", "Accept": "*/*"}
                ledger.record(
                    Event.STEP_STARTED, step=f"step{n}", data={"attempt": 1, "headers": headers}
                )
        return records / (time.perf_counter() - start)


def raw_rate(lines: list[bytes], path: Path) -> float:
    """Records/s for the same lines written by a bare write+flush+fsync loop."""
    with path.open("ab") as out:
        start = time.perf_counter()
        for line in lines:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())
        return len(lines) / (time.perf_counter() - start)


def main() -> None:
    """Run the rounds and print both rates and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    args = parser.parse_args()

    ledger_rates: list[float] = []
    raw_rates: list[float] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for round_ in range(args.rounds):
            folder = Path(tmp) / f"ledger{round_}"
            ledger_rates.append(ledger_rate(folder, args.records))
            lines = (folder / LEDGER_FILE).read_bytes().splitlines(keepends=True)
            raw_rates.append(raw_rate(lines, Path(tmp) / f"raw{round_}.jsonl"))
            print(
                f"round {round_ + 1}: ledger {ledger_rates[-1]:,.0f} records/s, "
                f"raw write+flush+fsync {raw_rates[-1]:,.0f} lines/s"
            )
    ledger_median, raw_median = statistics.median(ledger_rates), statistics.median(raw_rates)
    print(
        f"{args.records} records x {args.rounds} rounds (median): "
        f"ledger {ledger_median:,.0f} records/s, raw {raw_median:,.0f} lines/s, "
        f"ledger/raw {ledger_median / raw_median:.2f} "
        f"({1e3 / ledger_median:.3f} ms vs {1e3 / raw_median:.3f} ms per record)"
    )


if __name__ == "__main__":
    main()
