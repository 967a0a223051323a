"""Model collector cost on 10k, 100k and 1M prediction rows, beside two baselines.

For each prediction log the same sample (the last `--sample` rows) is measured three ways, each
in a fresh child process that reports its wall time and how much its peak resident memory
(ru_maxrss) grew during the case, its imports done before:

- `read the file`: every line of the log read once, nothing kept: what any full pass costs;
- `json + fairlearn`: the log loaded with plain `json` (every line read, the sample parsed) and
  fairlearn's MetricFrame (selection rate, accuracy, TPR, FPR by group) with the parity and
  equalized-odds differences: what a notebook would do;
- `model collector`: `forensics.snapshot` with the model collector, as a run does it (ledger,
  redaction of secrets and personal data, the sample stored): threshold, groups, and drift of
  the score and two features against a 10,000-row reference.

The collector reads the log backwards and stops at the sample, so its time and memory should
not grow with the log. Prints, never asserts; fairlearn is a dev extra (skipped without it).

    .venv/bin/python bench/model_bench.py --rows 10000 100000 1000000 --sample 10000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REGIONS = ("north", "south", "east")
LINE = (
    '{{"ts": "2026-11-27T10:{m:02d}:{s:02d}Z", "request_id": "r-{n}", "region": "{region}", '
    '"label": {label}, "score": {score:.5f}, "prediction": {prediction}, "age": {age:.2f}, '
    '"income": {income:.2f}, "email": "user{n}@example.com"}}\n'
)


def write_predictions(path: Path, rows: int, seed: int, age_shift: float = 0.0) -> None:
    """A JSON-lines prediction log of a model biased by region, written in blocks."""
    rng = random.Random(seed)
    with path.open("w") as log:
        block = []
        for n in range(rows):
            region = REGIONS[n % 3]
            label = int(rng.random() < (0.6, 0.3, 0.45)[n % 3])
            score = min(
                1.0, max(0.0, rng.gauss(0.35 + 0.3 * label + (0.2, -0.1, 0.0)[n % 3], 0.15))
            )
            block.append(
                LINE.format(
                    m=n // 60 % 60,
                    s=n % 60,
                    n=n,
                    region=region,
                    label=label,
                    score=score,
                    prediction=int(score >= 0.5),
                    age=rng.gauss(40 + age_shift, 12),
                    income=rng.lognormvariate(10, 0.5),
                )
            )
            if len(block) == 10_000:
                log.write("".join(block))
                block.clear()
        log.write("".join(block))


def collector_spec(predictions: Path, reference: Path, sample: int) -> dict[str, Any]:
    """The model collector as a bias runbook would configure it."""
    return {
        "type": "model",
        "predictions_file": str(predictions),
        "group_field": "region",
        "score_field": "score",
        "threshold": 0.5,
        "features": ["age", "income"],
        "reference_file": str(reference),
        "sample": sample,
    }


def read_file(predictions: Path) -> dict[str, float]:
    """Read every line once, keeping nothing."""
    before = _peak()
    start = time.perf_counter()
    lines = 0
    with predictions.open("rb") as log:
        for _ in log:
            lines += 1
    return {"seconds": time.perf_counter() - start, "rss_growth_mib": _peak() - before}


def json_and_fairlearn(predictions: Path, sample: int) -> dict[str, float]:
    """Load the log with plain json, keep the last `sample` rows, and score them with fairlearn."""
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    before = _peak()
    start = time.perf_counter()
    with predictions.open() as log:
        rows = [json.loads(line) for line in log.readlines()[-sample:]]
    truth = [r["label"] for r in rows]
    predicted = [int(r["score"] >= 0.5) for r in rows]
    groups = [r["region"] for r in rows]
    MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "accuracy": accuracy_score,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
        },
        y_true=truth,
        y_pred=predicted,
        sensitive_features=groups,
    )
    demographic_parity_difference(truth, predicted, sensitive_features=groups)
    equalized_odds_difference(truth, predicted, sensitive_features=groups)
    return {"seconds": time.perf_counter() - start, "rss_growth_mib": _peak() - before}


def model_collector(evidence: Path, spec: dict[str, Any]) -> dict[str, float]:
    """Run the collector through `forensics.snapshot`, as a run does."""
    from bench.snapshot_bench import run_case

    return run_case(evidence, spec)


def _peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(case: str, *args: str) -> dict[str, float]:
    """Run one case in a fresh interpreter and read back its figures."""
    code = (
        "import json, sys; from pathlib import Path; import bench.model_bench as b; "
        "case, args = sys.argv[1], sys.argv[2:]; "
        "print(json.dumps(b.run(case, args)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, case, *args], capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout.splitlines()[-1]))


def run(case: str, args: list[str]) -> dict[str, float]:
    """One case by name, in this process."""
    if case == "read":
        return read_file(Path(args[0]))
    if case == "fairlearn":
        return json_and_fairlearn(Path(args[0]), int(args[1]))
    return model_collector(Path(args[0]), json.loads(args[1]))


def report(name: str, figures: dict[str, float]) -> None:
    """One line of figures."""
    print(
        f"{name:<40} {figures['seconds']:7.3f} s   peak RSS +{figures['rss_growth_mib']:6.1f} MiB"
    )


def main() -> None:
    """Generate the logs in a temporary folder and run each case."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--sample", type=int, default=10_000, help="latest predictions used")
    options = parser.parse_args()
    try:
        import fairlearn  # noqa: F401
    except ImportError:
        fairlearn_here = False
    else:
        fairlearn_here = True
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        reference = root / "reference.jsonl"
        write_predictions(reference, 10_000, seed=1)
        for rows in options.rows:
            log = root / f"predictions-{rows}.jsonl"
            write_predictions(log, rows, seed=2, age_shift=5)
            size = log.stat().st_size / 1e6
            print(f"{rows:,} rows ({size:.0f} MB), sample {options.sample:,}")
            report("  read the file", in_child("read", str(log)))
            if fairlearn_here:
                report(
                    "  json + fairlearn MetricFrame",
                    in_child("fairlearn", str(log), str(options.sample)),
                )
            else:
                print("  json + fairlearn MetricFrame             (fairlearn not installed)")
            spec = collector_spec(log, reference, options.sample)
            report(
                "  model collector (snapshot)",
                in_child("collector", str(root / f"ev-{rows}"), json.dumps(spec)),
            )
            log.unlink()


if __name__ == "__main__":
    main()
