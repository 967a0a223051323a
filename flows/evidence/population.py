"""The population: a hash-chained index of every incident under a home, for auditors to sample.

Each incident folder proves its own records, but nothing inside a folder can show that the
folder itself was deleted, swapped for another, or added behind the engine's back. The index,
`incidents/index.jsonl`, is one more chain beside the folders: an entry when an incident opens,
and one each time a run of it ends, naming the incident, its document, drill or real, how it
stands and its ledger's head (count and hash). A ledger only grows, so every head the index
names must still be in the folder's ledger, at the same place.

Like a ledger, the index cannot stop someone who rewrites it whole: `runbook evidence verify
--all` prints the index's head, to be kept outside this machine and given back with
`--index-head` at the next audit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows.errors import Problem, RunbookError
from flows.evidence.incident import DOCUMENT_FILE, INCIDENT_FILE, Incident
from flows.evidence.records import (
    EMPTY_HEAD,
    GENESIS,
    HEAD_FILE,
    Event,
    Head,
    RunbookRef,
    parse_head,
    record_hash,
    record_line,
)
from flows.evidence.verify import read_records
from flows.files import locked
from flows.runbook.parse import parse_runbook
from flows.times import utc_stamp

INDEX_FILE = "index.jsonl"
INDEX_LOCK = "index.lock"


class IndexEvent(StrEnum):
    """What an index entry says happened to an incident."""

    OPENED = "incident.opened"
    """The engine opened the incident: written before its folder, so no folder goes unlisted."""
    UPDATED = "incident.updated"
    """A run of the incident ended, or its ledger was sealed: where it stands now."""
    ADOPTED = "incident.adopted"
    """An incident that predates the index, listed by `runbook evidence index --adopt`."""


class Standing(StrEnum):
    """How an incident stands, as its latest `run.finished` record says."""

    OPEN = "open"
    """Opened, no run has finished yet (running now, or stopped by a crash)."""
    WAITING = "waiting"
    """Stopped at a gate nobody has acknowledged yet."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class IndexEntry(BaseModel):
    """One line of index.jsonl, hashed and chained exactly as a ledger record is."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    seq: int = Field(ge=1)
    ts: str
    event: Annotated[IndexEvent, Field(strict=False)]
    incident: str
    runbook: RunbookRef
    kind: str
    severity: str
    drill: bool
    standing: Annotated[Standing, Field(strict=False)]
    count: int = Field(ge=0, description="The ledger's record count when this entry was written.")
    head_hash: str = Field(description="The hash of the ledger's last record then; 64 zeros.")
    actor: str
    prev: str
    hash: str


ENTRY_FIELDS = tuple(IndexEntry.model_fields)


@dataclass(frozen=True)
class Population:
    """The index as read: the entries that chain, and what breaks the chain, if anything."""

    entries: tuple[IndexEntry, ...]
    problem: str | None

    @property
    def head_hash(self) -> str:
        return self.entries[-1].hash if self.entries else GENESIS

    def latest(self) -> dict[str, IndexEntry]:
        """The newest entry of every incident the index lists, by incident id."""
        return {entry.incident: entry for entry in self.entries}


# -- writing ------------------------------------------------------------------------------------


def note_opened(incidents_dir: Path, incident: Incident, actor: str) -> IndexEntry:
    """List a new incident in the index, before its folder exists."""
    return _append(
        incidents_dir,
        IndexEvent.OPENED,
        incident,
        kind=incident.runbook.kind or "other",
        standing=Standing.OPEN,
        head=EMPTY_HEAD,
        actor=actor,
    )


def note_standing(
    incidents_dir: Path, folder: Path, event: IndexEvent = IndexEvent.UPDATED
) -> IndexEntry | None:
    """Record where an incident stands now: its ledger's head and latest run status.

    None when the folder holds no incident (nothing to list).
    """
    incident = _read_incident(folder)
    if incident is None:
        return None
    head = parse_head((folder / HEAD_FILE).read_bytes()) if (folder / HEAD_FILE).exists() else None
    return _append(
        incidents_dir,
        event,
        incident,
        kind=_kind_of(folder, incident),
        standing=standing_of(folder),
        head=head or EMPTY_HEAD,
        actor="engine",
    )


def standing_of(folder: Path) -> Standing:
    """The status of the folder's latest `run.finished` record; open when there is none."""
    finished = [
        r for r in read_records(folder, skip_unreadable=True) if r.event is Event.RUN_FINISHED
    ]
    if not finished:
        return Standing.OPEN
    try:
        return Standing(str(finished[-1].data.get("status")))
    except ValueError:
        return Standing.OPEN


def adopt_unlisted(incidents_dir: Path) -> list[str]:
    """List every incident folder the index does not name yet (incidents older than the index).

    An adoption is an entry like any other, so the index shows when each was added.
    """
    listed = read_population(incidents_dir).latest()
    adopted = []
    for folder in incident_folders(incidents_dir):
        if folder.name not in listed and note_standing(incidents_dir, folder, IndexEvent.ADOPTED):
            adopted.append(folder.name)
    return adopted


def incident_folders(incidents_dir: Path) -> list[Path]:
    """Every folder under the incidents folder that holds an incident, by name."""
    return sorted(path.parent for path in incidents_dir.glob(f"*/{INCIDENT_FILE}"))


def _append(
    incidents_dir: Path,
    event: IndexEvent,
    incident: Incident,
    *,
    kind: str,
    standing: Standing,
    head: Head,
    actor: str,
) -> IndexEntry:
    incidents_dir.mkdir(parents=True, exist_ok=True)
    with _locked(incidents_dir):
        population = read_population(incidents_dir)
        if population.problem is not None:
            raise RunbookError(
                Problem(
                    incidents_dir / INDEX_FILE,
                    len(population.entries) + 1,
                    f"the incident index is damaged: {population.problem}",
                    hint="run `runbook evidence verify --all` and preserve the home as it is",
                )
            )
        if event is IndexEvent.OPENED:
            earlier = _earlier_opening(incidents_dir, population, incident.id)
            if earlier is not None:
                return earlier
        body: dict[str, Any] = {
            "seq": len(population.entries) + 1,
            "ts": utc_stamp(),
            "event": str(event),
            "incident": incident.id,
            "runbook": {
                "id": incident.runbook.id,
                "version": incident.runbook.version,
                "sha256": incident.runbook.sha256,
            },
            "kind": kind,
            "severity": incident.runbook.severity,
            "drill": incident.drill,
            "standing": str(standing),
            "count": head.count,
            "head_hash": head.hash,
            "actor": actor,
            "prev": population.head_hash,
        }
        body["hash"] = record_hash(body)
        with open(incidents_dir / INDEX_FILE, "ab") as index:
            index.write(record_line(body))
            index.flush()
            os.fsync(index.fileno())
    return IndexEntry.model_validate(body)


def _earlier_opening(
    incidents_dir: Path, population: Population, incident_id: str
) -> IndexEntry | None:
    """The entry of an earlier opening of this id that never got a record: a retried start.

    An id whose ledger the index saw records of belongs to an incident whose folder is gone:
    opening it again would hide the loss behind a new ledger, so that is refused.
    """
    earlier = population.latest().get(incident_id)
    if earlier is None:
        return None
    if earlier.event is IndexEvent.OPENED and earlier.count == 0:
        return earlier
    raise RunbookError(
        Problem(
            incidents_dir / INDEX_FILE,
            earlier.seq,
            f"incident {incident_id!r} was opened before and had {earlier.count} records, "
            "but its folder is missing",
            hint="pick another --incident, and run `runbook evidence verify --all`",
        )
    )


@contextmanager
def _locked(incidents_dir: Path) -> Iterator[None]:
    # Alert workers open incidents in several processes at once: one writer at a time keeps
    # every entry's seq and prev right.
    with locked(incidents_dir / INDEX_LOCK):
        yield


# -- reading ------------------------------------------------------------------------------------


def read_population(incidents_dir: Path) -> Population:
    """The index's entries that chain from the first, and the first problem after them."""
    path = incidents_dir / INDEX_FILE
    if not path.exists():
        return Population((), None)
    lines = path.read_bytes().split(b"\n")
    torn = lines.pop()
    entries: list[IndexEntry] = []
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
        entry, problem = _check_entry(line, number, prev)
        if entry is None:
            return Population(tuple(entries), f"entry {number}: {problem}")
        entries.append(entry)
        prev = entry.hash
    if torn:
        problem = f"entry {len(entries) + 1}: last line is incomplete (torn write or truncated?)"
        return Population(tuple(entries), problem)
    return Population(tuple(entries), None)


def _check_entry(line: bytes, seq: int, prev: str) -> tuple[IndexEntry | None, str]:
    try:
        raw: Any = json.loads(line)
    except ValueError:
        return None, "not valid JSON"
    if not isinstance(raw, dict) or set(raw) != set(ENTRY_FIELDS):
        return None, "not an index entry"
    if raw["hash"] != record_hash(raw):
        return None, "hash does not match its contents (edited?)"
    if raw["seq"] != seq:
        return None, f"found seq {raw['seq']} in its place (entry deleted or reordered?)"
    if raw["prev"] != prev:
        return None, f"prev does not match the hash of entry {seq - 1} (deleted or reordered?)"
    if line + b"\n" != record_line({name: raw[name] for name in ENTRY_FIELDS}):
        return None, "not stored in its canonical form (duplicate keys, spacing, key order?)"
    try:
        return IndexEntry.model_validate(raw), ""
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return None, f"not an index entry ({where}: {first['msg']})"


def _read_incident(folder: Path) -> Incident | None:
    try:
        return Incident.model_validate_json((folder / INCIDENT_FILE).read_bytes())
    except (OSError, ValueError):
        return None


def _kind_of(folder: Path, incident: Incident) -> str:
    """The runbook's kind: as incident.json names it, or from the document's front matter."""
    if incident.runbook.kind is not None:
        return incident.runbook.kind
    try:
        return str(parse_runbook(folder / DOCUMENT_FILE).meta.kind)
    except (OSError, RunbookError):
        return "other"
