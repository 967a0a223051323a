"""What every collector receives (a store and a redactor) and yields (artifacts and misses)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from flows.contract.actions import time_left
from integrations.forensics.redaction import Counted, TextRedactor, redact_value
from integrations.forensics.store import ArtifactStore, StoredArtifact, with_redactions

SPEC_CONFIG = ConfigDict(extra="forbid", frozen=True)

MiB = 1024 * 1024


@dataclass(frozen=True)
class Kit:
    """The tools a collector stores with: the incident's artifact store and the run's redactor,
    and the step's deadline its waits are cut to."""

    store: ArtifactStore
    redact: TextRedactor
    deadline: float | None = None
    """When the step's `timeout_s` runs out (`time.monotonic()`); None: no limit."""
    incident: str = ""
    """The incident's id: the salt of values a collector keeps only as hashes."""

    def time_left(self, default: float) -> float:
        """Seconds a collector may still wait: its own limit, cut to the step's deadline."""
        return time_left(self.deadline, default)

    def put_json(self, data: Any, masked: int = 0) -> StoredArtifact:
        """Store a JSON document (indented, keys sorted), secrets and personal data redacted first.

        `masked` counts secrets the collector already replaced itself (credential headers).
        """
        counted = Counted(self.redact)
        clean = redact_value(data, counted)
        text = json.dumps(clean, indent=2, sort_keys=True, default=str) + "\n"
        stored = self.store.put_stream([text.encode()])
        return with_redactions(stored, counted, masked)

    def put_text(self, data: bytes) -> StoredArtifact:
        """Store raw output, redacted line by line when it is text."""
        return self.store.put_bytes(data, self.redact)

    def put_file(self, path: Path, max_bytes: int | None = None) -> StoredArtifact:
        """Store a file (capped), redacted line by line when it is text."""
        return self.store.put_file(path, self.redact, max_bytes)


@dataclass(frozen=True)
class Collected:
    """One stored artifact, named for a person (`/var/log/syslog`), with facts for the record."""

    name: str
    artifact: StoredArtifact
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Missed:
    """One thing a collector could not gather while it gathered the rest."""

    name: str
    error: str


Piece = Collected | Missed
Pieces = Iterator[Piece]
