"""The population an auditor samples from: one row per incident, and the check of them all.

Rows come from each incident's own ledger (the source of truth), and list every incident the
index names and every folder on disk, so an incident the index lost still shows, marked.
`verify_population` is `runbook evidence verify --all`: the index's chain, every folder it
names against the heads it recorded, and every folder it does not name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from flows.evidence.incident import INCIDENT_FILE, Incident
from flows.evidence.population import IndexEntry, incident_folders, read_population
from flows.evidence.records import Event, Record
from flows.evidence.verify import read_records, verify_ledger
from flows.times import parse_utc

CONTAINMENT_WORDS = ("contain", "mitigat", "isolat", "quarantin")
"""A step or gate whose id or title holds one of these contains the incident when it is done."""

_PEOPLE_EXCLUDED = ("engine", "alert:", "drill")
_RESPONSE_EVENTS = (Event.STEP_SUCCEEDED, Event.GATE_ACKNOWLEDGED)


@dataclass(frozen=True)
class CensusRow:
    """One incident as an auditor samples it. Times are UTC stamps; durations are seconds."""

    id: str
    runbook: str
    version: int
    kind: str
    severity: str
    drill: bool
    opened: str
    first_response: str | None
    contained: str | None
    closed: str | None
    status: str
    commander: str | None
    time_to_respond_s: float | None
    time_to_recover_s: float | None
    indexed: bool
    """Whether the population index names the incident; False is a finding in itself."""


COLUMNS = tuple(CensusRow.__dataclass_fields__)


def census(incidents_dir: Path) -> list[CensusRow]:
    """Every incident under this home, oldest first: the ones indexed and the ones on disk."""
    listed = read_population(incidents_dir).latest()
    rows = []
    for folder in incident_folders(incidents_dir):
        row = _row(folder, listed.get(folder.name))
        if row is not None:
            rows.append(row)
    return sorted(rows, key=lambda row: (row.opened, row.id))


def census_row(folder: Path) -> CensusRow | None:
    """One incident's row, as `census` lists it; None when the folder holds no incident."""
    return _row(folder, read_population(folder.parent).latest().get(folder.name))


def _row(folder: Path, entry: IndexEntry | None) -> CensusRow | None:
    try:
        incident = Incident.model_validate_json((folder / INCIDENT_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    records = read_records(folder, skip_unreadable=True)
    finished = [r for r in records if r.event is Event.RUN_FINISHED]
    status = str(finished[-1].data.get("status", "?")) if finished else "open"
    first_response = next((r.ts for r in records if r.event in _RESPONSE_EVENTS), None)
    closed = finished[-1].ts if finished and status == "succeeded" else None
    opened = incident.started_at
    return CensusRow(
        id=incident.id,
        runbook=incident.runbook.id,
        version=incident.runbook.version,
        kind=incident.runbook.kind or (entry.kind if entry else "other"),
        severity=_severity(incident, records),
        drill=incident.drill,
        opened=opened,
        first_response=first_response,
        contained=_contained(records),
        closed=closed,
        status=status,
        commander=_commander(incident, records),
        time_to_respond_s=_seconds(opened, first_response),
        time_to_recover_s=_seconds(opened, closed),
        indexed=entry is not None,
    )


def _contained(records: Sequence[Record]) -> str | None:
    """When the first containment step succeeded or containment gate was acknowledged."""
    titles = {
        r.step: str(r.data.get("title", ""))
        for r in records
        if r.step and r.event in (Event.STEP_STARTED, Event.GATE_WAITING)
    }
    for record in records:
        if record.event not in _RESPONSE_EVENTS or record.step is None:
            continue
        named = f"{record.step} {titles.get(record.step, '')}".lower()
        if any(word in named for word in CONTAINMENT_WORDS):
            return record.ts
    return None


def _severity(incident: Incident, records: Sequence[Record]) -> str:
    """The incident's severity now: the last one a responder set, else the runbook's."""
    changed = [r.data.get("severity") for r in records if r.event is Event.INCIDENT_SEVERITY]
    latest = changed[-1] if changed else None
    return latest if isinstance(latest, str) else incident.runbook.severity


def _commander(incident: Incident, records: Sequence[Record]) -> str | None:
    """Who commanded: the person last assigned the commander role, else the person who started
    the incident, else the first to act at a gate."""
    assigned = [
        r.data.get("assignee")
        for r in records
        if r.event is Event.INCIDENT_ASSIGNED and r.data.get("commander") is True
    ]
    if assigned and isinstance(assigned[-1], str):
        return assigned[-1]
    started_by = incident.started_by or ""
    person = started_by.partition(":")[2] if ":" in started_by else started_by
    if person and not started_by.startswith(("alert:", "drill:")):
        return person
    for record in records:
        if record.event is Event.GATE_ACKNOWLEDGED and not record.actor.startswith(
            _PEOPLE_EXCLUDED
        ):
            return record.actor
    return None


def _seconds(start: str, end: str | None) -> float | None:
    if end is None:
        return None
    took: datetime = parse_utc(end)
    return round((took - parse_utc(start)).total_seconds(), 3)


# -- verify --all -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentCheck:
    """One incident's part of `verify --all`."""

    incident: str
    ok: bool
    problems: list[str]
    records: int = 0


@dataclass(frozen=True)
class PopulationCheck:
    """The outcome of `verify_population`: the index, then every incident."""

    ok: bool
    index_entries: int
    index_head: str
    problems: list[str]
    """What is wrong with the index itself (its chain, the head it was expected to reach)."""
    incidents: list[IncidentCheck] = field(default_factory=list)


def verify_population(incidents_dir: Path, expected_head: str | None = None) -> PopulationCheck:
    """Check the index's chain, every incident it names, and every folder it does not.

    `expected_head` is an index head kept from an earlier audit: it must still be in the chain,
    or the index was rewritten since.
    """
    population = read_population(incidents_dir)
    problems = [f"index: {population.problem}"] if population.problem else []
    if expected_head is not None and all(e.hash != expected_head for e in population.entries):
        problems.append(
            f"index: no entry has the head {expected_head} kept at an earlier audit "
            "(the index was rewritten or cut since)"
        )
    by_incident: dict[str, list[IndexEntry]] = {}
    for entry in population.entries:
        by_incident.setdefault(entry.incident, []).append(entry)
    on_disk = {folder.name: folder for folder in incident_folders(incidents_dir)}
    checks = [
        _check_listed(incidents_dir / name, entries, name in on_disk)
        for name, entries in by_incident.items()
    ]
    checks += [
        IncidentCheck(
            name,
            False,
            [
                "not in the incident index (added outside the engine? incidents older than "
                "the index are listed with `runbook evidence index --adopt`)"
            ],
        )
        for name in sorted(on_disk)
        if name not in by_incident
    ]
    ok = not problems and all(check.ok for check in checks)
    return PopulationCheck(ok, len(population.entries), population.head_hash, problems, checks)


def _check_listed(folder: Path, entries: list[IndexEntry], exists: bool) -> IncidentCheck:
    name = folder.name
    if not exists:
        return IncidentCheck(
            name,
            False,
            [f"the index lists it (entry {entries[0].seq}) but its folder is gone (deleted?)"],
        )
    verification = verify_ledger(folder)
    problems = [] if verification.ok else [str(verification.problem)]
    hashes = verification.hashes
    if verification.incident not in (None, name):
        problems.append(f"its records are of incident {verification.incident!r} (moved here?)")
    for entry in entries:
        if entry.count > len(hashes):
            problems.append(
                f"index entry {entry.seq} saw {entry.count} records, the ledger holds "
                f"{len(hashes)} that chain (cut short or replaced?)"
            )
        elif entry.count and hashes[entry.count - 1] != entry.head_hash:
            problems.append(
                f"record {entry.count}: not the one index entry {entry.seq} saw "
                "(the ledger was replaced or rewritten)"
            )
    problems += _facts_problems(folder, entries[-1])
    return IncidentCheck(name, not problems, problems, verification.count)


def _facts_problems(folder: Path, entry: IndexEntry) -> list[str]:
    try:
        incident = Incident.model_validate_json((folder / INCIDENT_FILE).read_bytes())
    except (OSError, ValueError):
        return [f"{INCIDENT_FILE} is not an incident record"]
    problems = []
    if incident.runbook.sha256 != entry.runbook.sha256 or incident.runbook.id != entry.runbook.id:
        problems.append(f"{INCIDENT_FILE} names another document than the index listed")
    if incident.drill != entry.drill:
        problems.append(
            f"{INCIDENT_FILE}: drill is {incident.drill}, the index listed {entry.drill}"
        )
    return problems
