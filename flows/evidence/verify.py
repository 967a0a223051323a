"""Reading a ledger back and checking it: each record's bytes, the chain, the head, the folder.

`verify_ledger` names the first record that breaks the chain (edited, deleted, reordered, not
stored exactly as the writer writes it, not a record at all), the head (a cut-off tail, a
rewritten last record, a size that is not the ledger's), or the folder (records of another
incident or document, a runbook.md, scenario.yaml or incident.json that is not the one the
records name, a sealed ledger without its seal). The writer uses `check_chain` too, on records
past the head.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flows.errors import Problem, RunbookError
from flows.evidence.incident import DOCUMENT_FILE, INCIDENT_FILE, SCENARIO_FILE, incident_facts
from flows.evidence.records import (
    GENESIS,
    HEAD_FILE,
    LEDGER_FILE,
    RECORD_FIELDS,
    Event,
    Head,
    Record,
    parse_head,
    record_hash,
    record_line,
)

SEAL_FILE = "seal.json"
_NOT_CANONICAL = "not stored in its canonical form (duplicate keys, spacing, key order?)"
ARTIFACTS_DIR = "artifacts"
"""Where artifacts are stored, content-addressed: `artifacts/<first two hex>/<sha256>`."""


CHECKS = (
    ("chain", "every record's hash matches its contents and names the hash of the one before"),
    ("canonical bytes", "every record is stored exactly as its canonical line"),
    ("head", "head.json's count, last hash and size are the ledger's"),
    ("incident", "every record is of one incident and one runbook document"),
    (DOCUMENT_FILE, "the document the records name, by its sha256 (when in the folder)"),
    (SCENARIO_FILE, "a drill's scenario as run, by the sha256 its drill.started names"),
    (INCIDENT_FILE, "names the records' incident and document; its facts are run.started's"),
    ("artifacts", "every artifact a custody record names is present and hashes to its sha256"),
    ("seal", "a ledger with an evidence.sealed record has its seal.json"),
)
"""The checks `verify_ledger` makes, in order, with what each one passing shows."""


@dataclass(frozen=True)
class Check:
    """One of `CHECKS` as made: passed, failed, or not made (`ok` None), and what it found."""

    name: str
    ok: bool | None
    detail: str


@dataclass(frozen=True)
class Verification:
    """The outcome of `verify_ledger`: intact or not, and the first bad record when not."""

    ok: bool
    count: int
    head_hash: str | None
    problem: str | None
    bad_seq: int | None
    incident: str | None = None
    """The incident id the records are of (record 1's)."""
    hashes: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """The hash of each of the `count` records that chain, in order: the seal's leaves."""
    custody: tuple[Custody, ...] = field(default=(), compare=False, repr=False)
    """What the `artifact.collected` records among them say: the artifacts' hashes."""
    sealed: tuple[Record, ...] = field(default=(), compare=False, repr=False)
    """The `evidence.sealed` records among them."""
    checks: tuple[Check, ...] = field(default=(), compare=False)
    """Each of `CHECKS` with its own result: the ones after a failed check are not made."""


def _checks(
    failed: str | None, problem: str | None, *, artifacts: bool = True
) -> tuple[Check, ...]:
    """Every check's result when `failed` (a name in `CHECKS`, or None) found `problem`."""
    results, reached = [], True
    for name, shows in CHECKS:
        if name == failed:
            results.append(Check(name, False, problem or ""))
            reached = False
        elif not reached or (failed == "canonical bytes" and name == "chain"):
            # The chain and the bytes are checked record by record: past the record where one
            # failed, neither was made.
            results.append(Check(name, None, "not checked: an earlier check failed"))
        elif name == "artifacts" and not artifacts:
            results.append(Check(name, None, "not checked here: left to the caller"))
        else:
            results.append(Check(name, True, shows))
    return tuple(results)


def read_records(folder: Path, *, skip_unreadable: bool = False) -> list[Record]:
    """All complete records of a folder's ledger, in file order; none when there is no ledger.

    A line that is not a record raises, naming it; with `skip_unreadable` it is left out
    instead, for views of a damaged ledger (a report, `evidence show`), never for deciding
    what the engine does. A torn last line (a write a crash interrupted) is always left out.
    `verify_ledger` reports both.
    """
    path = Path(folder) / LEDGER_FILE
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")[:-1]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(Record.model_validate(json.loads(line)))
        except ValueError:  # not JSON, or JSON that is not a record (ValidationError)
            if skip_unreadable:
                continue
            raise RunbookError(
                Problem(path, number, "not a ledger record", "run `runbook evidence verify`")
            ) from None
    return records


def verify_ledger(folder: Path, *, artifacts: bool = True) -> Verification:
    """Check the chain and the head of a folder's ledger; name the first bad record if any.

    A missing head.json fails verification: without it a cut-off tail would go unnoticed.
    `artifacts=False` leaves the artifacts to the caller (a bundle checks them in the zip).
    """
    folder = Path(folder)
    ledger_path, head_path = folder / LEDGER_FILE, folder / HEAD_FILE
    if not ledger_path.exists() and not head_path.exists():
        absent = f"no {LEDGER_FILE} in {folder}"
        return Verification(False, 0, None, absent, None, checks=_checks("chain", absent))
    head = parse_head(head_path.read_bytes()) if head_path.exists() else None
    if not ledger_path.exists():
        claimed = head.count if head else 0
        missing = f"{LEDGER_FILE} is missing but {HEAD_FILE} records {claimed} records"
        return Verification(
            False, 0, None, missing, 1 if claimed else None, checks=_checks("chain", missing)
        )

    chain = read_chain(ledger_path, measure_at=head.count if head else 0)
    if chain.problem is not None:
        at_fault = "canonical bytes" if chain.problem.endswith(_NOT_CANONICAL) else "chain"
        return _outcome(
            chain, chain.problem, len(chain.hashes) + 1, _checks(at_fault, chain.problem)
        )
    if head is None:
        no_head = (
            f"{HEAD_FILE}: not a valid head (expected count, hash and size)"
            if head_path.exists()
            else f"{HEAD_FILE} is missing (a cut-off tail would go unnoticed)"
        )
        return _outcome(chain, no_head, None, _checks("head", no_head))
    problem, bad_seq = _compare_head(head, chain)
    failed: str | None = None if problem is None else "head"
    if problem is None:
        failed, problem, bad_seq = _check_folder(folder, chain, artifacts)
    return _outcome(chain, problem, bad_seq, _checks(failed, problem, artifacts=artifacts))


def _outcome(
    chain: Chain, problem: str | None, bad_seq: int | None, checks: tuple[Check, ...]
) -> Verification:
    return Verification(
        ok=problem is None,
        count=len(chain.hashes),
        head_hash=chain.hashes[-1] if chain.hashes else None,
        problem=problem,
        bad_seq=bad_seq,
        incident=chain.first.incident if chain.first else None,
        hashes=tuple(chain.hashes),
        custody=tuple(chain.custody),
        sealed=tuple(chain.sealed),
        checks=checks,
    )


@dataclass(frozen=True)
class Custody:
    """What an `artifact.collected` record says an artifact is: enough to check it."""

    seq: int
    sha256: str
    collector: str

    @classmethod
    def of(cls, record: Record) -> Custody:
        data = record.data
        return cls(record.seq, str(data.get("sha256", "")), str(data.get("collector", "artifact")))


@dataclass
class Chain:
    """What one pass over a ledger keeps: a hash per record and the few records checks need.

    Memory grows by one hash per record, never by the records themselves, so a ledger of any
    length verifies in little memory.
    """

    hashes: list[str] = field(default_factory=list)
    custody: list[Custody] = field(default_factory=list)
    sealed: list[Record] = field(default_factory=list)
    first: Record | None = None
    started: Record | None = None
    """The first `run.started` record: the one that vouches for incident.json."""
    drill: Record | None = None
    """The first `drill.started` record: the one that vouches for scenario.yaml."""
    stranger: tuple[str, int] | None = None
    """The first record of another incident or document than record 1, and its seq."""
    size_at: int | None = None
    """The ledger's length through record `measure_at`, when it holds that many."""
    problem: str | None = None
    """What breaks the chain at record `len(hashes) + 1`; None when every line is a record."""


MAX_RECORD_BYTES = 16 * 1024 * 1024
"""A longer line is not read: no writer writes one, and reading it would let a planted line
take the verifier's memory."""


def read_chain(path: Path, measure_at: int = 0) -> Chain:
    """Check every line of the ledger at `path` in one pass, keeping what `Chain` holds."""
    chain = Chain()
    seq, prev, size = 1, GENESIS, 0
    with open(path, "rb") as ledger:
        while line := ledger.readline(MAX_RECORD_BYTES + 1):
            if not line.endswith(b"\n"):
                chain.problem = (
                    f"record {seq}: longer than {MAX_RECORD_BYTES} bytes (not a record)"
                    if len(line) > MAX_RECORD_BYTES
                    else f"record {seq}: last line is incomplete (torn write or truncated file)"
                )
                return chain
            record, problem = _check_record(line[:-1], seq, prev)
            if record is None:
                chain.problem = f"record {seq}: {problem}"
                return chain
            size += len(line)
            _keep(chain, record)
            if seq == measure_at:
                chain.size_at = size
            seq, prev = seq + 1, record.hash
    return chain


def _keep(chain: Chain, record: Record) -> None:
    chain.hashes.append(record.hash)
    if chain.first is None:
        chain.first = record
    elif chain.stranger is None and (
        record.incident != chain.first.incident or record.runbook != chain.first.runbook
    ):
        chain.stranger = (
            f"record {record.seq}: of incident {record.incident!r}, not {chain.first.incident!r}"
            if record.incident != chain.first.incident
            else f"record {record.seq}: names another runbook than record 1",
            record.seq,
        )
    if record.event is Event.RUN_STARTED and chain.started is None:
        chain.started = record
    elif record.event is Event.DRILL_STARTED and chain.drill is None:
        chain.drill = record
    elif record.event is Event.ARTIFACT_COLLECTED:
        chain.custody.append(Custody.of(record))
    elif record.event is Event.EVIDENCE_SEALED:
        chain.sealed.append(record)


def _compare_head(head: Head, chain: Chain) -> tuple[str | None, int | None]:
    # A head behind the ledger is a head a power loss kept from disk: the chain vouches for the
    # records past it. A head ahead of the ledger, or naming another hash, is tampering.
    count = len(chain.hashes)
    if head.count > count:
        return (
            f"record {count + 1}: missing; {HEAD_FILE} records {head.count} records but the "
            f"ledger holds {count} (tail truncated?)"
        ), count + 1
    if head.count == 0:
        problem = f"{HEAD_FILE} counts no records but names a hash (rewritten?)"
        return (problem, None) if head.hash != GENESIS else (None, None)
    if head.hash != chain.hashes[head.count - 1]:
        problem = f"record {head.count}: hash differs from the one in {HEAD_FILE} (rewritten?)"
        return problem, head.count
    # The head's size is the ledger's length through its last counted record, to the byte.
    if head.size != chain.size_at:
        problem = (
            f"{HEAD_FILE} says the first {head.count} records take {head.size} bytes, "
            f"but they take {chain.size_at} (bytes added or removed?)"
        )
        return problem, None
    return None, None


def _check_folder(
    folder: Path, chain: Chain, artifacts: bool
) -> tuple[str | None, str | None, int | None]:
    """The records are of one incident and one document, and the folder's files are theirs:
    the name of the check that failed (in `CHECKS`), its problem and bad record, or Nones."""
    first = chain.first
    if first is None:
        return None, None, None
    if chain.stranger is not None:
        return "incident", *chain.stranger
    document = folder / DOCUMENT_FILE
    if document.exists():
        with document.open("rb") as copy:
            digest = hashlib.file_digest(copy, "sha256").hexdigest()
        if digest != first.runbook.sha256:
            named = f"{DOCUMENT_FILE} is not the document the records name (sha256 {digest})"
            return DOCUMENT_FILE, named, None
    scenario = _check_scenario(folder, chain.drill)
    if scenario is not None:
        return SCENARIO_FILE, *scenario
    facts = folder / INCIDENT_FILE
    if facts.exists():
        problem = _check_facts(facts, first, chain.started)
        if problem is not None:
            return INCIDENT_FILE, problem, None
    if artifacts:
        stored = check_artifacts(folder, chain.custody)
        if stored is not None:
            return "artifacts", *stored
    if chain.sealed and not (folder / SEAL_FILE).exists():
        seq = chain.sealed[-1].seq
        return "seal", f"record {seq} seals the ledger, but {SEAL_FILE} is missing", None
    return None, None, None


def _check_scenario(folder: Path, started: Record | None) -> tuple[str, int] | None:
    """The scenario copy a `drill.started` record names is present and hashes to its sha256;
    drills recorded before the copy was kept name none, and nothing is checked."""
    if started is None or not started.data.get("scenario_file"):
        return None
    copy = folder / SCENARIO_FILE
    if not copy.is_file():
        return (
            f"{SCENARIO_FILE} is missing; record {started.seq} (drill.started) names it",
            started.seq,
        )
    with copy.open("rb") as held:
        digest = hashlib.file_digest(held, "sha256").hexdigest()
    if digest != started.data.get("scenario_sha256"):
        return (
            f"{SCENARIO_FILE} is not the scenario record {started.seq} (drill.started) ran"
            f" (sha256 {digest})"
        ), started.seq
    return None


def artifact_name(sha256: str) -> str:
    """Where an artifact is stored, relative to its evidence folder (and in a bundle)."""
    return f"{ARTIFACTS_DIR}/{sha256[:2]}/{sha256}"


def check_artifacts(folder: Path, custody: Sequence[Custody]) -> tuple[str, int] | None:
    """Every artifact a custody record names is in the folder and hashes to its sha256."""
    for held in custody:
        if len(held.sha256) != 64 or any(c not in "0123456789abcdef" for c in held.sha256):
            return f"record {held.seq}: custody record names no sha256", held.seq
        path = folder / artifact_name(held.sha256)
        if not path.is_file():
            return f"record {held.seq}: artifact {path.relative_to(folder)} is missing", held.seq
        with path.open("rb") as stored:
            if hashlib.file_digest(stored, "sha256").hexdigest() != held.sha256:
                return (
                    f"record {held.seq}: artifact {path.relative_to(folder)} does not hash "
                    "to its custody record's sha256 (swapped?)"
                ), held.seq
    return None


def _check_facts(path: Path, first: Record, started: Record | None) -> str | None:
    """incident.json names the incident and document the records are of, and its facts are
    the ones `run.started` recorded (ledgers written before it recorded them: the drill flag)."""
    try:
        facts = json.loads(path.read_bytes())
        incident, runbook = facts["id"], facts["runbook"]
        named = (incident, runbook["id"], runbook["sha256"])
    except (ValueError, KeyError, TypeError):
        return f"{INCIDENT_FILE} is not an incident record"
    if named != (first.incident, first.runbook.id, first.runbook.sha256):
        return f"{INCIDENT_FILE} names another incident or document than the records"
    if started is None:
        return None
    recorded, held = started.data.get("incident"), incident_facts(facts)
    # Ledgers written before a fact was kept do not record it: what they do record must match.
    if isinstance(recorded, dict) and any(held.get(k) != v for k, v in recorded.items()):
        changed = sorted(k for k, v in recorded.items() if held.get(k) != v)
        return (
            f"{INCIDENT_FILE}: {', '.join(changed)} differ from what record {started.seq} "
            "(run.started) recorded (edited?)"
        )
    if (
        recorded is None
        and "drill" in started.data
        and started.data["drill"] != facts.get("drill", False)
    ):
        return f"{INCIDENT_FILE}: drill differs from what record {started.seq} recorded (edited?)"
    return None


def check_chain(data: bytes, seq: int, prev: str) -> tuple[list[Record], str | None]:
    """Check that the lines in `data` chain on from (`seq`, `prev`): the good records, a problem."""
    lines = data.split(b"\n")
    torn = lines.pop()  # empty when the data ends with a newline, as a whole record does
    records: list[Record] = []
    for line in lines:
        record, problem = _check_record(line, seq, prev)
        if record is None:
            return records, f"record {seq}: {problem}"
        records.append(record)
        seq, prev = seq + 1, record.hash
    if torn:
        return records, f"record {seq}: last line is incomplete (torn write or truncated file)"
    return records, None


def _check_record(line: bytes, seq: int, prev: str) -> tuple[Record | None, str]:
    """The record on `line` if it is record `seq` following `prev`; otherwise what is wrong."""
    try:
        raw: Any = json.loads(line)
    except ValueError:
        return None, "not valid JSON"
    if not isinstance(raw, dict):
        return None, "not a JSON object"
    missing = [field for field in RECORD_FIELDS if field not in raw]
    if missing:
        return None, f"not a ledger record (missing {', '.join(missing)})"
    # The hash is checked on the values exactly as they were read, before anything else.
    if raw["hash"] != record_hash(raw):
        return None, "hash does not match its contents (edited?)"
    if raw["seq"] != seq:
        return None, f"found seq {raw['seq']} in its place (record deleted or reordered?)"
    if raw["prev"] != prev:
        return None, f"prev does not match the hash of record {seq - 1} (deleted or reordered?)"
    # The stored bytes must be exactly the line the writer writes: json.loads keeps only the last
    # of duplicate keys and ignores spacing, so a line with either would show other values to a
    # reader than the ones hashed, or hide bytes in the record.
    if set(raw) == set(RECORD_FIELDS) and line + b"\n" != record_line(
        {name: raw[name] for name in RECORD_FIELDS}
    ):
        return None, _NOT_CANONICAL
    try:
        return Record.model_validate(raw), ""
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return None, f"not a ledger record ({where}: {first['msg']})"
