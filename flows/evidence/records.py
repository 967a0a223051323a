"""The evidence format: what one ledger record holds, how it is hashed and chained, and the head.

This is the contract with auditors; docs/evidence-format.md describes the same, field by field,
and `ledger_schema()` publishes it as a JSON Schema. A record's hash is sha256 over its
canonical JSON (every field but `hash`, keys sorted, no spaces, UTF-8 unescaped) and each record
carries the hash of the one before it (`prev`), so an edit, a deletion or a reordering breaks
the chain at that record. `head.json` counts the records, so a cut-off tail is caught too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from flows.times import parse_utc

LEDGER_FILE = "ledger.jsonl"
HEAD_FILE = "head.json"
GENESIS = "0" * 64
"""The `prev` of record 1."""
HEAD_WIDTH = 256
"""head.json is always this many bytes, so it is rewritten in place within one disk block."""

_SHA256_HEX = r"^[0-9a-f]{64}$"
_UTC_MICROSECONDS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"


class Event(StrEnum):
    """What a record says happened; docs/evidence-format.md says when each is written."""

    RUN_STARTED = "run.started"
    RUN_RESUMED = "run.resumed"
    RUN_FINISHED = "run.finished"
    STEP_STARTED = "step.started"
    STEP_RETRIED = "step.retried"
    STEP_SUCCEEDED = "step.succeeded"
    STEP_FAILED = "step.failed"
    STEP_SKIPPED = "step.skipped"
    GATE_WAITING = "gate.waiting"
    GATE_APPROVED = "gate.approved"
    """One approval of a gate that needs more (a quorum): the gate still waits."""
    GATE_REFUSED = "gate.refused"
    """Someone tried to pass a gate and was refused: not an approver, too early, a duplicate."""
    GATE_ACKNOWLEDGED = "gate.acknowledged"
    GATE_REJECTED = "gate.rejected"
    """Someone who may pass the gate turned it down, with a reason: the gate fails there."""
    GATE_REMINDED = "gate.reminded"
    """A waiting gate's approvers were reminded that its timeout (`remind_before_s`) nears."""
    GATE_TIMED_OUT = "gate.timed_out"
    """A gate waited `timeout_s`: escalated, paged (it still waits), failed or continued."""
    NOTE = "note"
    ARTIFACT_COLLECTED = "artifact.collected"
    ARTIFACT_FAILED = "artifact.failed"
    ALERT_RESOLVED = "alert.resolved"
    ALERT_UPDATED = "alert.updated"
    """Another event of the incident's alert: acknowledged, escalated, updated at its source,
    or fired again after it resolved."""
    EVIDENCE_SEALED = "evidence.sealed"
    DRILL_STARTED = "drill.started"
    DRILL_INJECT = "drill.inject"
    DRILL_SCORED = "drill.scored"
    DRILL_NOTE = "drill.note"
    DRILL_LESSON = "drill.lesson"
    DRILL_RESUMED = "drill.resumed"
    """A drill's clock goes on after a pause (the drill waited for an answer and a resume)."""
    DRILL_ATTENDED = "drill.attended"
    """A participant (or the facilitator) signed the drill's attendance."""
    DRILL_SIGNED_OFF = "drill.signed_off"
    """The facilitator or a reviewer signed the exercise off; a reviewer's sign-off closes it."""
    STEP_RETRY_REQUESTED = "step.retry_requested"
    """A responder asked for a failed step to run again; the resume that follows runs it."""
    RUN_RESUME_REQUESTED = "run.resume_requested"
    """A responder asked for the run to continue (from Slack); a worker resumes it."""
    RUN_ABORTED = "run.aborted"
    """A responder stopped the incident for good, with a reason: it never runs again."""
    INCIDENT_ASSIGNED = "incident.assigned"
    """A responder assigned a role of this incident (its commander, ...) to a person."""
    INCIDENT_SEVERITY = "incident.severity"
    """A responder changed the incident's severity from the runbook's."""
    STEER_REFUSED = "steer.refused"
    """Someone tried to steer the incident (retry, skip, abort, ...) and was refused."""
    CLOCK_STARTED = "clock.started"
    """A regulatory clock, or more milestones of it, started: their deadlines as computed."""
    CLOCK_REMINDED = "clock.reminded"
    """A clock's owner role was reminded that a milestone's deadline nears (`remind_before`)."""
    CLOCK_EXPIRED = "clock.expired"
    """A milestone's deadline passed before it was filed."""
    CLOCK_STOPPED = "clock.stopped"
    """A milestone was filed: its notified gate acknowledged, with the filing's reference."""


class RunbookRef(BaseModel):
    """Which runbook, at which version and content hash, produced the records."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    id: str = Field(description="The runbook's id, from its front matter.")
    version: int = Field(description="The runbook's version, from its front matter.")
    sha256: str = Field(
        pattern=_SHA256_HEX,
        description="sha256 (hex) of the runbook document as run, byte for byte.",
    )


class Record(BaseModel):
    """One line of ledger.jsonl: what happened, when, by whom, and its place in the chain."""

    # Strict: a record reads back exactly as it was written, never coerced ("5" is not 5).
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        title="Evidence ledger record",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    seq: int = Field(ge=1, description="Position in the ledger: 1, 2, 3, ... without gaps.")
    ts: str = Field(
        pattern=_UTC_MICROSECONDS,
        description="When the record was written: UTC, with microseconds and a Z.",
    )
    incident: str = Field(description="The incident id.")
    runbook: RunbookRef
    step: str | None = Field(description="The step or gate id; null for the whole run.")
    # Not strict: JSON gives the event as text, which names the member.
    event: Annotated[Event, Field(strict=False, description="What happened.")]
    actor: str = Field(description="`engine`, or who acted: a responder, `alert:<source>`.")
    data: dict[str, Any] = Field(description="The details, secrets redacted; per event.")
    prev: str = Field(pattern=_SHA256_HEX, description="`hash` of the record before; 64 zeros.")
    hash: str = Field(
        pattern=_SHA256_HEX,
        description="sha256 (hex) of the canonical JSON of this record without `hash`.",
    )

    @property
    def at(self) -> datetime:
        """`ts` as an aware UTC datetime."""
        return parse_utc(self.ts)

    @property
    def outputs(self) -> Mapping[str, Any]:
        """What a `step.succeeded` record's action returned; empty for any other record."""
        if self.event is not Event.STEP_SUCCEEDED:
            return {}
        outputs = self.data.get("outputs")
        return outputs if isinstance(outputs, dict) else {}


RECORD_FIELDS = tuple(Record.model_fields)
"""The fields of a record, in the order they are written on its line."""


def canonical_json(body: Mapping[str, Any]) -> bytes:
    """The exact bytes a record's hash is computed over: keys sorted, compact, UTF-8 unescaped.

    Python's json spells floats by their shortest repr (60.0, 1e-07), NaN and Infinity as
    such, and integers of any size in full; ledgers written so far were hashed this way.
    """
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of `record` without its `hash` field."""
    body = {key: value for key, value in record.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def record_line(record: Mapping[str, Any]) -> bytes:
    """The line a record is stored as: its fields in order, compact, UTF-8, one newline.

    JSON escapes newlines inside strings, so a record never spans two lines.
    """
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


@dataclass(frozen=True)
class Head:
    """The content of head.json: how many records, the last one's hash, the ledger's size."""

    count: int
    hash: str
    size: int

    def encode(self) -> bytes:
        """head.json's bytes: the JSON object padded with spaces to HEAD_WIDTH, newline-ended."""
        text = f'{{"count": {self.count}, "hash": "{self.hash}", "size": {self.size}}}'
        return (text.ljust(HEAD_WIDTH - 1) + "\n").encode()


EMPTY_HEAD = Head(0, GENESIS, 0)


def parse_head(raw: bytes) -> Head | None:
    """The head in head.json's bytes, or None when they are not a head."""
    try:
        fields = json.loads(raw)
        head = Head(int(fields["count"]), str(fields["hash"]), int(fields["size"]))
    except (ValueError, TypeError, KeyError):
        return None
    return head if head.count >= 0 and head.size >= 0 else None


def ledger_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) every line of ledger.jsonl satisfies."""
    return Record.model_json_schema()
