"""Content-addressed artifact storage: evidence_dir/artifacts/<sha256[:2]>/<sha256>, read-only.

Content streams to a temporary file while it is hashed, so memory stays flat whatever the size,
then is linked into place under its hash. Linking never replaces an existing file: storing the
same content twice keeps the first copy, and a stored artifact is never rewritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from flows.evidence.verify import ARTIFACTS_DIR, artifact_name
from integrations.forensics.redaction import Counted, TextRedactor, read_lines, redact_lines

CHUNK = 1024 * 1024
SNIFF = 8192
"""Bytes looked at to tell binary from text: a NUL byte among them means binary."""


@dataclass(frozen=True)
class StoredArtifact:
    """One stored artifact: its hash, size in bytes, path, and what was redacted from it."""

    sha256: str
    size: int
    path: Path
    redactions: int = 0
    """Every replacement made in it: secrets and personal data."""
    personal_data: dict[str, int] = field(default_factory=dict)
    """How many of those were personal data, by kind: `{"email": 3, "card": 1}`."""


class ArtifactStore:
    """The read-only, content-addressed artifacts of one incident's evidence folder."""

    def __init__(self, evidence_dir: Path) -> None:
        self.evidence_dir = Path(evidence_dir)
        self.root = self.evidence_dir / ARTIFACTS_DIR

    def put_stream(self, chunks: Iterable[bytes]) -> StoredArtifact:
        """Store the concatenated chunks, hashing as they stream by; return where they went."""
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, temp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o444)
            sha256 = digest.hexdigest()
            target = self.path_of(sha256)
            target.parent.mkdir(exist_ok=True)
            # link (unlike rename) fails rather than replace: a stored artifact is never rewritten.
            with suppress(FileExistsError):
                os.link(temp, target)
                _fsync_dir(target.parent)
        finally:
            os.unlink(temp)
        return StoredArtifact(sha256, size, target)

    def put_bytes(self, data: bytes, redactor: TextRedactor | None = None) -> StoredArtifact:
        """Store bytes; text (no NUL byte in its first 8 KiB) is redacted when given a redactor."""
        if redactor is None or b"\0" in data[:SNIFF]:
            return self.put_stream([data])
        counted = Counted(redactor)
        stored = self.put_stream(redact_lines(data.splitlines(keepends=True), counted))
        return with_redactions(stored, counted)

    def put_file(
        self, path: Path, redactor: TextRedactor | None = None, max_bytes: int | None = None
    ) -> StoredArtifact:
        """Store a file (its first `max_bytes` when capped), redacting text line by line."""
        with open(path, "rb") as source:
            reader: BinaryIO | _Capped = source if max_bytes is None else _Capped(source, max_bytes)
            binary = b"\0" in source.read(SNIFF)
            source.seek(0)
            if redactor is None or binary:
                return self.put_stream(_chunks(reader))
            counted = Counted(redactor)
            stored = self.put_stream(redact_lines(read_lines(reader), counted))
        return with_redactions(stored, counted)

    def path_of(self, sha256: str) -> Path:
        """Where the artifact with this hash is (or would be) stored."""
        return self.evidence_dir / artifact_name(sha256)


class _Capped:
    """A binary reader that ends after `limit` bytes."""

    def __init__(self, source: BinaryIO, limit: int) -> None:
        self._source = source
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._source.read(size)
        self._left -= len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        line = self._source.readline(size) if size else b""
        self._left -= len(line)
        return line


def _chunks(reader: BinaryIO | _Capped) -> Iterator[bytes]:
    while chunk := reader.read(CHUNK):
        yield chunk


def with_redactions(stored: StoredArtifact, counted: Counted, masked: int = 0) -> StoredArtifact:
    """The stored artifact with what `counted` replaced in it (and `masked` secrets besides)."""
    return StoredArtifact(
        stored.sha256, stored.size, stored.path, counted.count + masked, counted.personal_data()
    )


def _fsync_dir(folder: Path) -> None:
    """Make a new directory entry durable, as the ledger record that names it will be."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
