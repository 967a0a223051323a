"""Forensic snapshot cost: a big log via `file` and `log_tail`, and 1,000 small files.

Each case runs in a fresh child process that reports its wall time and how much its peak
resident memory (ru_maxrss) grew during the snapshot, so the cases do not hide each other's
peaks. The same log at 50 MB and 200 MB shows that memory does not grow with file size.
Text is redacted line by line (the engine's Redactor, as in a real run: secrets and every kind
of personal data); the big log is also snapshotted with secrets alone, the baseline the
personal data scans add to. Prints, never asserts.

    .venv/bin/python bench/snapshot_bench.py --sizes 50 200
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINE = (
    "2026-11-26T10:{m:02d}:{s:02d}Z INFO api request id={n} path=/v1/items/{n} status=200 "
    "duration_ms=12 user=alice\n"
)


def write_log(path: Path, megabytes: int) -> None:
    """A plain-text access log of about `megabytes` MB, written in 1 MB pieces."""
    target = megabytes * 1_000_000
    written = n = 0
    with path.open("w") as log:
        while written < target:
            piece = "".join(
                LINE.format(m=(n + i) // 60 % 60, s=(n + i) % 60, n=n + i) for i in range(8000)
            )
            n += 8000
            written += len(piece)
            log.write(piece)


def run_case(evidence: Path, spec: dict[str, object], personal: bool = True) -> dict[str, float]:
    """Snapshot one collector spec in this process; seconds and ru_maxrss growth in MiB."""
    from flows.contract.actions import ActionContext
    from flows.evidence.ledger import Ledger
    from flows.evidence.personal import PersonalDataRedactor
    from flows.evidence.records import RunbookRef
    from flows.evidence.redact import Redactor
    from integrations.backends import local_backends
    from integrations.forensics.actions import SnapshotArgs, snapshot

    redactor = Redactor(["bench-secret-value"], personal=PersonalDataRedactor())
    backends = local_backends(evidence / "backends", echo=lambda line: None)
    args = SnapshotArgs.model_validate({"collectors": [spec]})
    ref = RunbookRef(id="bench", version=1, sha256="0" * 64)
    with Ledger(evidence, "INC-BENCH", ref, redactor) as ledger:
        context = ActionContext(
            incident="INC-BENCH",
            runbook="bench",
            step="snap",
            tickets=backends.tickets,
            chat=backends.chat,
            evidence=ledger,
            home=evidence,
            redact=lambda text: redactor.redact(text)[0],
            redact_collected=lambda text: redactor.redact(text, personal=personal)[0],
            evidence_dir=evidence,
        )
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        out = snapshot(args, context)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert not out["failures"], out["failures"]
    stored = sum(a["size"] for a in out["artifacts"])
    return {"seconds": seconds, "rss_growth_mib": (after - before) / 1024, "stored": stored}


def in_child(evidence: Path, spec: dict[str, object], personal: bool = True) -> dict[str, float]:
    """Run one case in a fresh interpreter and read back its figures."""
    code = (
        "import json, sys; from pathlib import Path; from bench.snapshot_bench import run_case; "
        "print(json.dumps(run_case(Path(sys.argv[1]), json.loads(sys.argv[2]), "
        "sys.argv[3] == 'personal')))"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(evidence),
            json.dumps(spec),
            "personal" if personal else "secrets",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def report(name: str, figures: dict[str, float]) -> None:
    """One line of figures."""
    print(
        f"{name:<34} {figures['seconds']:7.2f} s   peak RSS +{figures['rss_growth_mib']:6.1f} MiB"
        f"   stored {figures['stored'] / 1e6:8.1f} MB"
    )


def main() -> None:
    """Generate the inputs in a temporary folder and run each case."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200], help="log sizes, MB")
    parser.add_argument("--small", type=int, default=1000, help="number of small files")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        for size in options.sizes:
            log = root / f"app-{size}.log"
            write_log(log, size)
            whole = {"type": "file", "paths": [str(log)], "max_bytes": 1 << 30}
            report(
                f"file, {size} MB log, secrets only",
                in_child(root / f"ev-secrets-{size}", whole, personal=False),
            )
            report(f"file, {size} MB log", in_child(root / f"ev-file-{size}", whole))
            tail = {"type": "log_tail", "path": str(log), "lines": 1000}
            report(f"log_tail 1000 lines, {size} MB log", in_child(root / f"ev-tail-{size}", tail))
            grep = {"type": "log_tail", "path": str(log), "lines": 1000, "grep": "id=1\\d*7 "}
            report(f"log_tail grep, {size} MB log", in_child(root / f"ev-grep-{size}", grep))
            log.unlink()
        small = root / "small"
        small.mkdir()
        for n in range(options.small):
            (small / f"f{n:04d}.conf").write_text(f"setting_{n} = {n}\nowner = team-{n % 7}\n")
        spec = {"type": "file", "paths": [f"{small}/*.conf"], "max_files": options.small}
        report(f"file, {options.small} small files", in_child(root / "ev-small", spec))


if __name__ == "__main__":
    main()
