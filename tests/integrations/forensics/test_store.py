"""The content-addressed artifact store: hashing, read-only files, deduplication, redaction."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from flows.evidence.redact import Redactor
from integrations.forensics.store import ArtifactStore

CANARY = "canary-7f3a9c1e"


def redact(text: str) -> str:
    """The engine's redaction of one run that knows the canary secret."""
    return Redactor([CANARY]).redact(text)[0]


def test_stored_under_its_sha256(tmp_path: Path) -> None:
    """An artifact lands at artifacts/<sha[:2]>/<sha> with its hash and size."""
    stored = ArtifactStore(tmp_path).put_stream([b"hello ", b"world"])
    digest = hashlib.sha256(b"hello world").hexdigest()
    assert (stored.sha256, stored.size) == (digest, 11)
    assert stored.path == tmp_path / "artifacts" / digest[:2] / digest
    assert stored.path.read_bytes() == b"hello world"


def test_artifact_is_read_only(tmp_path: Path) -> None:
    """A stored artifact has mode 0444."""
    stored = ArtifactStore(tmp_path).put_bytes(b"evidence")
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o444


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    """Storing the same bytes twice keeps one file and leaves no temporary behind."""
    store = ArtifactStore(tmp_path)
    first = store.put_bytes(b"same")
    inode = first.path.stat().st_ino
    second = store.put_stream([b"sa", b"me"])
    assert second.path == first.path and first.path.stat().st_ino == inode
    assert [p.name for p in (tmp_path / "artifacts").rglob("*") if p.is_file()] == [first.sha256]


def test_text_file_is_redacted_line_by_line(tmp_path: Path) -> None:
    """Secrets in a text file are replaced and counted; other lines are kept byte for byte."""
    source = tmp_path / "app.log"
    source.write_bytes(b"start\nkey " + CANARY.encode() + b"\npassword=hunter22\ncaf\xe9\n")
    stored = ArtifactStore(tmp_path).put_file(source, redact)
    assert stored.path.read_bytes() == b"start\nkey [REDACTED]\npassword=[REDACTED]\ncaf\xe9\n"
    assert stored.redactions == 2


def test_binary_file_is_stored_as_is(tmp_path: Path) -> None:
    """A file with a NUL byte in its first 8 KiB is copied unchanged, secret or not."""
    data = b"\x00\x01" + CANARY.encode()
    source = tmp_path / "core.bin"
    source.write_bytes(data)
    stored = ArtifactStore(tmp_path).put_file(source, redact)
    assert stored.path.read_bytes() == data and stored.redactions == 0


def test_private_key_across_a_batch_boundary_is_redacted(tmp_path: Path) -> None:
    """A PEM private key's lines are redacted together even where a redaction batch would end."""
    body = b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n"
    filler = b"x" * 100 + b"\n"
    pem = b"-----BEGIN PRIVATE KEY-----\n" + body * 4 + b"-----END PRIVATE KEY-----\n"
    source = tmp_path / "leak.txt"
    source.write_bytes(filler * 648 + pem)
    stored = ArtifactStore(tmp_path).put_file(source, redact)
    assert b"MIIEvQ" not in stored.path.read_bytes()


def test_file_is_capped_at_max_bytes(tmp_path: Path) -> None:
    """Only the first max_bytes of a file are stored."""
    source = tmp_path / "big.log"
    source.write_bytes(b"line\n" * 100)
    stored = ArtifactStore(tmp_path).put_file(source, redact, max_bytes=12)
    assert stored.path.read_bytes() == b"line\nline\nli"
