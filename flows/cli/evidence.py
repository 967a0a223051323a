"""`runbook evidence`: verify, seal, export, list and show an incident's evidence."""

from __future__ import annotations

import os
from pathlib import Path

from cyclopts import App

from flows.cli.common import EXIT_FAILED, EXIT_OK, evidence_folder, settings
from flows.engine.settings import Settings
from flows.evidence.bundle import export_bundle, verify_bundle
from flows.evidence.incident import list_incidents
from flows.evidence.records import Event
from flows.evidence.seal import seal_incident, verify_seal
from flows.evidence.verify import SEAL_FILE, read_records, verify_ledger
from flows.prefect.local_server import read_server

evidence_app = App(name="evidence", help="Inspect and verify incident evidence.")


@evidence_app.command
def verify(target: str, *, tsa_root: list[Path] | None = None) -> int:
    """Verify an incident (id or folder) or an exported bundle (.zip): exit 0 if intact, else 1.

    `--tsa-root CERT.pem` (repeatable) also checks the timestamp's signature chain.
    """
    roots = [path.read_bytes() for path in tsa_root or []] or None
    if target.endswith(".zip") and Path(target).is_file():
        bundle = verify_bundle(Path(target), trusted_roots=roots)
        if bundle.ok:
            print(f"ok: bundle intact, {bundle.records} records, {bundle.artifacts} artifact(s)")
            return EXIT_OK
        for problem in bundle.problems:
            print(f"TAMPERED: {problem}")
        return EXIT_FAILED
    folder = evidence_folder(settings(), target)
    result = verify_ledger(folder)
    if not result.ok:
        print(f"TAMPERED: {folder}: {result.problem}")
        return EXIT_FAILED
    print(f"ok: {result.count} records, chain intact, head {result.head_hash}")
    if (folder / SEAL_FILE).exists():
        seal = verify_seal(folder, trusted_roots=roots)
        if not seal.ok:
            for problem in seal.problems:
                print(f"TAMPERED: seal: {problem}")
            return EXIT_FAILED
        stamped = f", timestamped {seal.gen_time}" if seal.gen_time else ""
        print(f"ok: sealed root {seal.root} over {seal.count} records{stamped}")
    return EXIT_OK


@evidence_app.command
def seal(incident: str, *, tsa: str | None = None) -> int:
    """Seal an incident's ledger: a Merkle root, timestamped by an RFC 3161 authority if given."""
    sealed = seal_incident(evidence_folder(settings(), incident), tsa_url=tsa)
    stamped = f", timestamp from {sealed.tsa.url}" if sealed.tsa else ""
    print(f"sealed {sealed.count} records: root {sealed.root}{stamped}")
    return EXIT_OK


@evidence_app.command
def export(incident: str, *, out: Path) -> int:
    """Write an auditor's bundle: ledger, artifacts, manifest of hashes, report.html, seal."""
    current = settings()
    folder = evidence_folder(current, incident)
    path = export_bundle(folder, out)
    print(f"wrote {path}; check it anywhere with: runbook evidence verify {path}")
    _publish_bundle(current, folder.name, path)
    return EXIT_OK


def _publish_bundle(settings: Settings, incident: str, bundle: Path) -> None:
    """Point the incident's Prefect evidence artifact at the bundle, when Prefect is up.

    Export never starts a Prefect server for this: without one, the bundle is the record.
    """
    if settings.prefect == "local-server" and not os.environ.get("PREFECT_API_URL"):
        server = read_server(settings.home)
        if server is None:
            return
        os.environ["PREFECT_API_URL"] = server.url
    # Imported here: Prefect's client costs over a second to import, paid only when it is up.
    from flows.engine.compile import publish_bundle

    publish_bundle(incident, bundle)


@evidence_app.command(name="list")
def list_evidence() -> int:
    """List incidents with their runbook, start time and current status."""
    current = settings()
    for incident in list_incidents(current.incidents_dir):
        records = read_records(current.incidents_dir / incident.id, skip_unreadable=True)
        finished = [r for r in records if r.event is Event.RUN_FINISHED]
        status = finished[-1].data.get("status", "?") if finished else "running"
        drill = " [drill]" if incident.drill else ""
        print(f"{incident.id}  {incident.runbook.id}  {incident.started_at}  {status}{drill}")
    return EXIT_OK


@evidence_app.command
def show(incident: str) -> int:
    """Print an incident's timeline from its ledger."""
    folder = evidence_folder(settings(), incident)
    for record in read_records(folder, skip_unreadable=True):
        step = record.step or "-"
        data = record.data
        detail = data.get("error") or data.get("note") or data.get("status") or ""
        print(
            f"{record.seq:>4} {record.ts}  {record.event:<18} {step:<24} {record.actor}  {detail}"
        )
    return EXIT_OK
