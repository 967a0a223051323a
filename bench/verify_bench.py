"""Verify's cost: a 100,000-record ledger folder and bundles of 1,000 artifacts, time and peak RSS.

Every measurement runs in a fresh subprocess that reports its own time and peak RSS (VmHWM),
beside baselines measured the same way in the same run: the same imports doing nothing (the RSS
floor) and sha256 of the same bytes (the time floor; for a bundle also every member inflated and
hashed, which verify cannot do without). Bundles of four times the artifacts, and of artifacts
four times bigger, show whether memory grows with the bundle: four times the artifacts is also
four times the records, which verify_ledger and verify_seal hold in memory, so that case tells
the ledger's cost apart from the artifacts'. Prints, never asserts.

The evidence is written by the engine's own Ledger and ArtifactStore, custody records as the
forensics actions write them (step.started without its own fsync, as the engine writes it), then
sealed and exported with export_bundle. It is written under /dev/shm when there is one, where
fsync is free: a fsync per record would take minutes of setup, and verify reads from the page
cache either way. Peak RSS is the subprocess's VmHWM (Linux): ru_maxrss would count the
parent's memory at fork.

    .venv/bin/python bench/verify_bench.py --records 20000 --artifacts 200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from flows.evidence.bundle import export_bundle, verify_bundle
from flows.evidence.incident import Incident, open_incident, runbook_info
from flows.evidence.ledger import Ledger
from flows.evidence.records import LEDGER_FILE, Event, RunbookRef
from flows.evidence.seal import seal_incident
from flows.evidence.verify import verify_ledger
from flows.runbook.parse import parse_runbook
from integrations.forensics.store import ArtifactStore

RUNBOOK = Path(__file__).parent.parent / "runbooks" / "breach" / "credential-leak.md"
ARTIFACT_EVERY = 100
"""In the ledger folder, one record in this many is an artifact's custody record."""
CHUNK = 1 << 20
SHM = Path("/dev/shm")


def write_incident(root: Path, name: str, records: int, artifacts: int, artifact_size: int) -> Path:
    """An incident of `records` records, `artifacts` of them custody records of stored artifacts."""
    runbook = parse_runbook(RUNBOOK)
    incident = Incident(
        id=name,
        runbook=runbook_info(runbook, RUNBOOK),
        inputs={"service": "api"},
        started_at="2026-01-01T00:00:00+00:00",
    )
    folder = open_incident(root, incident, RUNBOOK.read_text())
    store = ArtifactStore(folder)
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    every = max(1, (records - 2) // max(1, artifacts))
    collected = 0
    with Ledger(folder, incident.id, ref) as ledger:
        ledger.record(Event.RUN_STARTED, data={"inputs": {"service": "api"}})
        for n in range(records - 2):
            step = f"step{n // 2}"
            if collected < artifacts and n % every == 0:
                collected += 1
                ledger.record(
                    Event.ARTIFACT_COLLECTED,
                    step=step,
                    data=_custody(store, collected, artifact_size),
                )
            elif n % 2:
                outputs = {"status": 200, "body": {"id": f"SEC-{n}", "state": "open"}}
                ledger.record(
                    Event.STEP_SUCCEEDED,
                    step=step,
                    data={"outputs": outputs, "attempts": 1},
                )
            else:
                args = {"url": f"http://tickets.local/api/{n}", "method": "GET"}
                ledger.record(
                    Event.STEP_STARTED,
                    step=step,
                    data={"uses": "http.request", "with": args},
                    durable=False,
                )
        ledger.record(Event.RUN_FINISHED, data={"status": "succeeded", "waiting": []})
    return folder


def _custody(store: ArtifactStore, n: int, size: int) -> dict[str, Any]:
    """Store one artifact (incompressible, as most evidence is not a run of one byte)."""
    stored = store.put_stream(_random_chunks(n, size))
    return {
        "collector": "file",
        "label": "bench",
        "args": {"paths": [f"/var/log/app{n}.log"]},
        "host": "bench",
        "user": "bench",
        "pid": 1,
        "name": f"/var/log/app{n}.log",
        "sha256": stored.sha256,
        "size": stored.size,
        "path": stored.path.relative_to(store.evidence_dir).as_posix(),
        "started_at": "2026-01-01T00:00:00.000000Z",
        "finished_at": "2026-01-01T00:00:00.100000Z",
        "redactions": 0,
        "facts": {"truncated": False},
    }


def _random_chunks(n: int, size: int) -> list[bytes]:
    chunks = [n.to_bytes(8, "big")]
    left = size - 8
    while left > 0:
        chunks.append(os.urandom(min(CHUNK, left)))
        left -= len(chunks[-1])
    return chunks


def export(root: Path, name: str, artifacts: int, artifact_size: int) -> Path:
    """A sealed incident of `artifacts` artifacts (and a few records each), exported."""
    folder = write_incident(root / "incidents", name, artifacts * 4, artifacts, artifact_size)
    seal_incident(folder)
    return export_bundle(folder, root / f"{name}.zip")


# -- measuring, one subprocess each -------------------------------------------------------------


def measure(kind: str, path: Path) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its seconds and peak RSS in KiB."""
    command = [sys.executable, __file__, "--measure", kind, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _child(kind: str, path: Path) -> None:
    """In the subprocess: do one thing, print its time and this process's peak RSS."""
    start = time.perf_counter()
    ok: bool | None = None
    if kind == "verify-ledger":
        ok = verify_ledger(path).ok
    elif kind == "verify-bundle":
        ok = verify_bundle(path).ok
    elif kind == "sha256":
        files = [path / LEDGER_FILE] if path.is_dir() else [path]
        for file in files:
            _hash(file.open("rb"))
    elif kind == "inflate":
        with zipfile.ZipFile(path) as bundle:
            for name in bundle.namelist():
                _hash(bundle.open(name))
    seconds = time.perf_counter() - start
    status = Path("/proc/self/status").read_text().splitlines()
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))  # KiB
    print(json.dumps({"seconds": seconds, "rss_kib": rss, "ok": ok}))


def _hash(stream: Any) -> str:
    digest = hashlib.sha256()
    with stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mib(size: float) -> str:
    return f"{size / (1 << 20):,.1f} MiB"


def _line(label: str, result: dict[str, Any], idle: dict[str, Any]) -> str:
    above = (result["rss_kib"] - idle["rss_kib"]) * 1024
    verdict = "" if result["ok"] is None else ("  ok" if result["ok"] else "  NOT OK")
    return (
        f"  {label:<34} {result['seconds'] * 1000:>9,.0f} ms   peak RSS "
        f"{_mib(result['rss_kib'] * 1024):>10} ({_mib(above)} above idle){verdict}"
    )


def main() -> None:
    """Build the evidence, then measure verify and its baselines, each in its own process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--artifacts", type=int, default=1000)
    parser.add_argument("--artifact-kib", type=int, default=64)
    parser.add_argument(
        "--dir", type=Path, default=SHM if SHM.is_dir() else None, help="where to write"
    )
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _child(args.measure[0], Path(args.measure[1]))
        return

    size = args.artifact_kib * 1024
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        idle = measure("idle", root)
        print(f"idle interpreter with the same imports: peak RSS {_mib(idle['rss_kib'] * 1024)}")

        artifacts = max(1, args.records // ARTIFACT_EVERY)
        folder = write_incident(root / "incidents", "ledger-folder", args.records, artifacts, 4096)
        ledger_bytes = (folder / LEDGER_FILE).stat().st_size
        print(
            f"ledger folder: {args.records:,} records ({artifacts:,} artifacts of 4 KiB), "
            f"ledger.jsonl {_mib(ledger_bytes)}"
        )
        print(_line("sha256 of ledger.jsonl", measure("sha256", folder), idle))
        print(_line("verify_ledger(folder)", measure("verify-ledger", folder), idle))

        bundles = [
            (args.artifacts, size),
            (args.artifacts * 4, size),
            (args.artifacts, size * 4),
        ]
        for n, (count, each) in enumerate(bundles):
            bundle = export(root, f"bundle{n}", count, each)
            print(
                f"bundle: {count:,} artifacts of {each // 1024:,} KiB, "
                f"{count * 4:,} records, zip {_mib(bundle.stat().st_size)}"
            )
            print(_line("sha256 of the zip", measure("sha256", bundle), idle))
            print(_line("inflate + sha256 of every member", measure("inflate", bundle), idle))
            print(_line("verify_bundle(zip)", measure("verify-bundle", bundle), idle))


if __name__ == "__main__":
    main()
