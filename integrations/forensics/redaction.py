"""Redaction of collected evidence: text streams in batches of whole lines, values leaf by leaf.

The engine hands actions a `str -> str` redactor (`ActionContext.redact_collected`: secrets
and the personal data the install redacts); what it replaced is read back from the markers new
in its answer: each `[REDACTED]` is a secret, each `[REDACTED:email]` an e-mail address.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from flows.evidence.personal import PersonalData
from flows.evidence.redact import REDACTED, is_secret_key

TextRedactor = Callable[[str], str]

BATCH_BYTES = 64 * 1024
"""Whole lines are redacted together up to about this size: one call per line costs 10x more."""

MAX_LINE = 64 * 1024
"""A longer line is cut into pieces: a file with no newlines must not be held whole."""

MAX_BATCH = 1024 * 1024
"""A PEM private key is kept in one batch (its lines only mean something together) up to this."""


_MARKER = re.compile(r"\[REDACTED(?::(?P<kind>[a-z_]+))?\]")
_MARKER_START = REDACTED[:-1]


class Counted:
    """A text redactor that also counts what it replaced: secrets, and personal data by kind."""

    def __init__(self, redact: TextRedactor) -> None:
        self._redact = redact
        self.secrets = 0
        self.personal: Counter[PersonalData] = Counter()

    @property
    def count(self) -> int:
        """Every replacement, secrets and personal data."""
        return self.secrets + self.personal.total()

    def personal_data(self) -> dict[str, int]:
        """The personal data replaced, by kind, in the kinds' order: `{"email": 3}`."""
        return {kind.value: self.personal[kind] for kind in PersonalData if self.personal[kind]}

    def __call__(self, text: str) -> str:
        out = self._redact(text)
        if _MARKER_START in out:
            # A marker the text already held (redacted once before) is not counted again.
            new = _markers(out)
            new.subtract(_markers(text))
            for kind, n in new.items():
                if n <= 0:
                    continue
                if kind is None:
                    self.secrets += n
                else:
                    self.personal[kind] += n
        return out


def _markers(text: str) -> Counter[PersonalData | None]:
    """The markers in a text by kind; None for a secret's."""
    found: Counter[PersonalData | None] = Counter()
    if _MARKER_START not in text:
        return found
    for match in _MARKER.finditer(text):
        kind = match.group("kind")
        if kind is None:
            found[None] += 1
        elif kind in _KINDS:
            found[PersonalData(kind)] += 1
    return found


_KINDS = frozenset(kind.value for kind in PersonalData)


def redact_lines(lines: Iterable[bytes], redact: Counted) -> Iterator[bytes]:
    """Redact a stream of byte lines in batches; bytes that are not UTF-8 pass through unchanged."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line)
        if size >= BATCH_BYTES and (size >= MAX_BATCH or not _inside_private_key(batch)):
            yield _redact_batch(batch, redact)
            batch, size = [], 0
    if batch:
        yield _redact_batch(batch, redact)


def _inside_private_key(batch: list[bytes]) -> bool:
    text = b"".join(batch)
    begin = text.rfind(b"PRIVATE KEY-----")
    return begin != -1 and b"-----END" not in text[begin:]


def _redact_batch(batch: list[bytes], redact: Counted) -> bytes:
    # surrogateescape round-trips any byte, so a stray Latin-1 byte survives redaction exactly.
    text = b"".join(batch).decode("utf-8", errors="surrogateescape")
    return redact(text).encode("utf-8", errors="surrogateescape")


def read_lines(stream: Any, limit: int = MAX_LINE) -> Iterator[bytes]:
    """The lines of a binary stream, each at most `limit` bytes (longer ones come in pieces)."""
    while line := stream.readline(limit):
        yield line


def redact_value(value: Any, redact: Counted) -> Any:
    """A copy of a JSON-like value with secrets replaced, whole values under secret-named keys."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and is_secret_key(key) and _worth_hiding(item):
                out[key] = REDACTED
                redact.secrets += 1
            else:
                out[key] = redact_value(item, redact)
        return out
    if isinstance(value, list | tuple):
        return [redact_value(item, redact) for item in value]
    return value


def _worth_hiding(value: Any) -> bool:
    # `{"token": null}` or `{"token": true}` hides nothing; replacing them would mislead.
    return value is not None and value != "" and not isinstance(value, bool) and value != REDACTED
