"""`runbook evidence`: verify, seal, export, list and show an incident's evidence."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from flows.cli.common import EXIT_FAILED, EXIT_OK, evidence_folder, settings
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.bundle import export_bundle, verify_bundle
from flows.evidence.census import COLUMNS, census, verify_population
from flows.evidence.population import adopt_unlisted, note_standing, read_population
from flows.evidence.seal import SealCheck, seal_incident, verify_seal
from flows.evidence.verify import SEAL_FILE, read_records, verify_ledger
from flows.prefect.local_server import read_server

evidence_app = App(name="evidence", help="Inspect and verify incident evidence.")


@evidence_app.command
def verify(
    target: str | None = None,
    *,
    every: Annotated[bool, Parameter(name="--all", negative="")] = False,
    index_head: str | None = None,
    tsa_root: list[Path] | None = None,
    require_timestamp: Annotated[bool, Parameter(negative="")] = False,
) -> int:
    """Verify an incident (id or folder) or an exported bundle (.zip): exit 0 if intact, else 1.

    `--all` verifies the whole population instead: the incident index, every incident it names
    and every folder it does not; `--index-head HASH` (printed by an earlier `--all`) must
    still be in the index. A seal's timestamp is checked against the trust anchors:
    `--tsa-root CERT.pem` (repeatable) or RUNBOOK_TSA_ROOTS. `--require-timestamp` fails
    unless the ledger is sealed with a timestamp that verifies against one of them.
    """
    current = settings()
    if every or target is None:
        if target is not None:
            raise RunbookError("give an incident or bundle to verify, or --all, not both")
        if not every:
            raise RunbookError("name an incident or bundle to verify, or --all for every one")
        return _verify_all(current, index_head)
    roots = _trust_anchors([*(tsa_root or []), *current.tsa_root_files()])
    if target.endswith(".zip") and Path(target).is_file():
        bundle = verify_bundle(Path(target), trusted_roots=roots)
        if not bundle.ok:
            for problem in bundle.problems:
                print(f"TAMPERED: {problem}")
            return EXIT_FAILED
        print(f"ok: bundle intact, {bundle.records} records, {bundle.artifacts} artifact(s)")
        if bundle.seal is None:
            return _unsealed(require_timestamp)
        return _timestamp_verdict(bundle.seal, bool(roots), require_timestamp)
    folder = evidence_folder(current, target)
    result = verify_ledger(folder)
    if not result.ok:
        print(f"TAMPERED: {folder}: {result.problem}")
        return EXIT_FAILED
    print(f"ok: {result.count} records, chain intact, head {result.head_hash}")
    if not (folder / SEAL_FILE).exists():
        return _unsealed(require_timestamp)
    seal = verify_seal(folder, trusted_roots=roots)
    if not seal.ok:
        for problem in seal.problems:
            print(f"TAMPERED: seal: {problem}")
        return EXIT_FAILED
    print(f"ok: sealed root {seal.root} over {seal.count} records")
    return _timestamp_verdict(seal, bool(roots), require_timestamp)


def _verify_all(current: Settings, index_head: str | None) -> int:
    check = verify_population(current.incidents_dir, index_head)
    for problem in check.problems:
        print(f"TAMPERED: {problem}")
    for incident in check.incidents:
        if incident.ok:
            print(f"ok: {incident.incident}: {incident.records} records")
        for problem in incident.problems:
            print(f"TAMPERED: {incident.incident}: {problem}")
    verdict = "ok" if check.ok else "FAILED"
    print(
        f"{verdict}: {len(check.incidents)} incident(s); index head {check.index_head} "
        f"over {check.index_entries} entries (keep it: --index-head at the next audit)"
    )
    return EXIT_OK if check.ok else EXIT_FAILED


def _trust_anchors(files: list[Path]) -> list[bytes] | None:
    try:
        return [path.read_bytes() for path in files] or None
    except OSError as error:
        raise RunbookError(
            f"cannot read a timestamp trust anchor: {error}; check --tsa-root / RUNBOOK_TSA_ROOTS"
        ) from None


def _unsealed(require_timestamp: bool) -> int:
    if require_timestamp:
        print("FAILED: not sealed, so no timestamp (runbook evidence seal --tsa URL)")
        return EXIT_FAILED
    return EXIT_OK


def _timestamp_verdict(seal: SealCheck, anchored: bool, require_timestamp: bool) -> int:
    """Say which time the seal proves and how far it is trusted."""
    if seal.gen_time is None:
        if require_timestamp:
            print("FAILED: the seal has no timestamp (seal again with --tsa URL)")
            return EXIT_FAILED
        return EXIT_OK
    if seal.time_verified:
        print(f"ok: timestamped {seal.gen_time} (the signed token's time, verified)")
        return EXIT_OK
    why = "no trust anchor given" if not anchored else "not verified"
    print(
        f"UNVERIFIED: the token says {seal.gen_time}, but its signature is unchecked ({why}):"
        " give the authority's root with --tsa-root or RUNBOOK_TSA_ROOTS"
    )
    return EXIT_FAILED if require_timestamp else EXIT_OK


@evidence_app.command
def seal(incident: str, *, tsa: str | None = None) -> int:
    """Seal an incident's ledger: a Merkle root, timestamped by an RFC 3161 authority if given."""
    current = settings()
    folder = evidence_folder(current, incident)
    sealed = seal_incident(folder, tsa_url=tsa)
    note_standing(folder.parent, folder)
    stamped = f", timestamp from {sealed.tsa.url}" if sealed.tsa else ""
    print(f"sealed {sealed.count} records: root {sealed.root}{stamped}")
    return EXIT_OK


@evidence_app.command
def export(incident: str, *, out: Path, by: str | None = None) -> int:
    """Write an auditor's bundle: ledger, artifacts, manifest of hashes, report.html, seal.

    The manifest and the report name who exported it: `--by NAME`, else the OS user.
    """
    current = settings()
    folder = evidence_folder(current, incident)
    path = export_bundle(folder, out, exported_by=by)
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
def list_evidence(
    *,
    json_output: Annotated[bool, Parameter(name="--json", negative="")] = False,
    csv_output: Annotated[bool, Parameter(name="--csv", negative="")] = False,
) -> int:
    """List every incident: the population an auditor samples from.

    `--json` and `--csv` give every field: id, runbook and version, kind, severity, drill,
    opened, first response, contained, closed, status, commander, and the seconds to respond
    and to recover; `indexed` false marks a folder the incident index does not name.
    """
    rows = census(settings().incidents_dir)
    if json_output:
        print(json.dumps([dataclasses.asdict(row) for row in rows], indent=2))
    elif csv_output:
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(dataclasses.asdict(row) for row in rows)
    else:
        for row in rows:
            drill = " [drill]" if row.drill else ""
            unlisted = " [NOT IN INDEX]" if not row.indexed else ""
            print(f"{row.id}  {row.runbook}  {row.opened}  {row.status}{drill}{unlisted}")
    return EXIT_OK


@evidence_app.command
def index(*, adopt: Annotated[bool, Parameter(negative="")] = False) -> int:
    """Show the incident index's head; `--adopt` lists incidents older than the index in it."""
    incidents_dir = settings().incidents_dir
    if adopt:
        adopted = adopt_unlisted(incidents_dir)
        print(f"adopted {len(adopted)} incident(s) into the index: {', '.join(adopted) or '-'}")
    population = read_population(incidents_dir)
    if population.problem:
        print(f"TAMPERED: index: {population.problem}")
        return EXIT_FAILED
    print(f"index head {population.head_hash} over {len(population.entries)} entries")
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
