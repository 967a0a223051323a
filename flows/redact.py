"""Secret redaction: what must never reach a log, ledger or chat message, replaced by a marker.

Three nets, applied to every string inside a value: exact secret values the engine knows (secret
inputs, configured tokens), well-known token shapes (Bearer, Slack, AWS, GitHub, JWT, PEM keys,
`password=...`), and whole values under keys whose name looks secret (`Authorization`, `api_key`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4
"""Shorter known values are ignored: redacting every "abc" or "1" would shred the evidence."""

_SECRET_KEY_WORDS = (
    "token",
    "password",
    "passwd",
    "secret",
    "apikey",
    "authorization",
    "cookie",
    "privatekey",
    "credential",
)
_KEY_SEPARATORS = re.compile(r"[-_\s]")

# A credential after `Bearer`/`Basic` looks like one: long and not a plain word, so prose such as
# "Bearer tokens" or "Basic troubleshooting" survives.
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)(\s+)([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)

_TOKEN_SHAPES = tuple(
    re.compile(pattern, flags)
    for pattern, flags in (
        (r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
         re.DOTALL),
        (r"\bxox[abposr]-[A-Za-z0-9-]+", 0),
        (r"\bxapp-[A-Za-z0-9-]+", 0),
        (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", 0),
        (r"\bgh[pousr]_[A-Za-z0-9]{20,}\b", 0),
        (r"\bgithub_pat_[A-Za-z0-9_]{20,}", 0),
        (r"\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", 0),
    )
)  # fmt: skip

# `password=hunter2`, `?token=abc&x=1`, `api-key: "abc"`: the key is kept, the value replaced.
_KEY_VALUE = re.compile(
    r"(?P<key>\b[\w.-]*(?:token|password|passwd|pwd|secret|api[_-]?key|credential"
    r"|private[_-]?key|authorization|cookie)[\w.-]*[\"']?)"
    r"(?P<sep>\s*[=:]\s*)"
    r"(?P<quote>[\"']?)"
    r"(?P<value>(?:(?:bearer|basic|token)\s+)?[^\s&\"',;]+)",
    re.IGNORECASE,
)


def is_secret_key(name: str) -> bool:
    """True when a mapping key names a secret (`X-Api-Key`, `client_secret`, `Set-Cookie`)."""
    folded = _KEY_SEPARATORS.sub("", name).lower()
    return any(word in folded for word in _SECRET_KEY_WORDS)


def _looks_like_credential(text: str) -> bool:
    if len(text) < 8:
        return False
    if any(c.isdigit() or c in "+/=-._~" for c in text):
        return True
    rest = text[1:]
    return any(c.isupper() for c in rest) and any(c.islower() for c in rest)


class Redactor:
    """Replaces secrets in any JSON-like value with "[REDACTED]" and counts the replacements."""

    def __init__(self, secrets: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        self._secrets = frozenset(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)
        self._patterns = tuple(patterns)
        # Longest first, so a secret that contains another is replaced whole.
        known = sorted(self._secrets, key=len, reverse=True)
        self._known = re.compile("|".join(map(re.escape, known))) if known else None
        self._extra = tuple(re.compile(p) for p in self._patterns)

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        """A new redactor that also knows these secret values; this one is unchanged."""
        return Redactor(self._secrets | frozenset(secrets), self._patterns)

    def redact(self, value: Any) -> tuple[Any, int]:
        """A deep copy of `value` with secrets replaced, and how many replacements were made."""
        if isinstance(value, str):
            return self._redact_text(value)
        if isinstance(value, Mapping):
            return self._redact_mapping(value)
        if isinstance(value, list | tuple):
            items = [self.redact(item) for item in value]
            copied = [item for item, _ in items]
            return (tuple(copied) if isinstance(value, tuple) else copied), sum(n for _, n in items)
        return value, 0

    def _redact_mapping(self, value: Mapping[Any, Any]) -> tuple[dict[Any, Any], int]:
        out: dict[Any, Any] = {}
        total = 0
        for key, item in value.items():
            if isinstance(key, str):
                key, n = self._redact_text(key)
                total += n
            if isinstance(key, str) and is_secret_key(key) and _worth_hiding(item):
                out[key] = REDACTED
                total += 1
                continue
            out[key], n = self.redact(item)
            total += n
        return out, total

    def _redact_text(self, text: str) -> tuple[str, int]:
        total = 0
        if self._known is not None:
            text, n = self._known.subn(REDACTED, text)
            total += n
        for pattern in self._extra:
            text, n = pattern.subn(REDACTED, text)
            total += n
        for pattern in _TOKEN_SHAPES:
            text, n = pattern.subn(REDACTED, text)
            total += n
        counter = _Counter()
        text = _AUTH_SCHEME.sub(counter.auth_scheme, text)
        text = _KEY_VALUE.sub(counter.key_value, text)
        return text, total + counter.count


def _worth_hiding(value: Any) -> bool:
    # `{"token": null}` or `{"token_valid": true}` hides nothing; replacing them would mislead.
    return value is not None and value != "" and not isinstance(value, bool) and value != REDACTED


class _Counter:
    """Replacement callbacks for `re.sub` that count what they actually replaced."""

    def __init__(self) -> None:
        self.count = 0

    def auth_scheme(self, match: re.Match[str]) -> str:
        scheme, space, credential = match.groups()
        if not _looks_like_credential(credential):
            return match.group(0)
        self.count += 1
        return f"{scheme}{space}{REDACTED}"

    def key_value(self, match: re.Match[str]) -> str:
        if match.group("value").endswith(REDACTED):
            return match.group(0)
        self.count += 1
        return f"{match.group('key')}{match.group('sep')}{match.group('quote')}{REDACTED}"
