"""Secret redaction: what must never reach a log, ledger or chat message, replaced by a marker.

Three nets, applied to every string inside a value: exact secret values the engine knows (secret
inputs, configured tokens), well-known token shapes (Bearer, Slack, AWS, GitHub, OpenAI and
Anthropic `sk-` keys, JWT, PEM keys, passwords in connection strings, `password=...`), and whole
values under keys whose name looks secret (`Authorization`, `api_key`).

What arrives from outside (collected artifacts, alert payloads) is redacted with
`personal=True`: the personal data the install chose (`flows.evidence.personal`) goes too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from flows.evidence.personal import PersonalDataRedactor

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 4
"""Shorter known values are ignored: redacting every "abc" or "1" would shred the evidence."""
_KEY_CACHE_SIZE = 4096

# A key names a secret when its LAST word does ("api_token", "X-Api-Key", "clientSecret"), not
# when a secret word appears anywhere: "secret_kind" or "credential-leak-..." name no secret.
_SECRET_LAST_WORDS = frozenset(
    {
        "token",
        "tokens",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "apikey",
        "authorization",
        "cookie",
        "credential",
        "credentials",
        "privatekey",
        "pat",
    }
)
_SECRET_LAST_PAIRS = frozenset({"apikey", "privatekey", "secretkey", "accesskey", "signingkey"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_KEY_SEPARATORS = re.compile(r"[-_.\s]+")

# Checked first, on its own: a PEM block spans lines and spaces, which the one-pass scan below
# treats as ends of values.
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?"
    r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)

# The password of a URL's user info (`postgres://app:hunter2@db/orders`, `redis://:pw@cache`):
# only the password goes, so the scheme, user and host stay readable. Checked on its own, and
# only where a `://` and an `@` are: a password in a URL may hold any character but `@` and `/`.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s:/?#@\[\]]*:)(?P<password>[^\s/?#@]+)(?=@)"
)

# One pass over the text finds three kinds of secret, leftmost first:
#   shape       a token whose form gives it away (Slack, AWS, GitHub, JWT)
#   scheme      `Bearer <credential>` / `Basic <credential>`
#   key/value   `password=hunter2`, `?token=abc&`, `"api_key": "abc"`, `Authorization: Token abc`
# A key is tried only where a run of key characters starts and is then taken possessively, so
# long unbroken text (base64 blobs, "a=a=a=...") scans in linear time.
_SECRET_KEY_TEXT = (
    r"(?i:token|password|passwd|pwd|secret|api[-_.]?key|authorization|cookie"
    r"|private[-_.]?key|credential)"
)
_SCAN = re.compile(
    r"(?P<shape>"
    r"\bxox[abposre]-[A-Za-z0-9-]+"
    r"|\bxapp-[A-Za-z0-9-]+"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}\b"
    r"|\bgithub_pat_[A-Za-z0-9_]{20,}"
    r"|\bsk-(?:proj-|ant-[a-z0-9]+-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"
    r"|\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r")"
    r"|\b(?P<scheme>(?i:bearer|basic))(?P<space>\s+)(?P<credential>[A-Za-z0-9\-._~+/]+=*)"
    rf"|(?<![\w.-])(?P<key>(?=[\w.-]*?{_SECRET_KEY_TEXT})[\w.-]++)"
    r"(?P<sep>[\"']?\s*[=:]\s*)"
    r"(?P<value>\"[^\"\n]*\"?|'[^'\n]*'?|(?i:(?:bearer|basic|token)\s+)?[^\s&\"',;]+)"
)


@functools.lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    """True when a mapping key names a secret (`X-Api-Key`, `client_secret`, `Set-Cookie`)."""
    words = [w for w in _KEY_SEPARATORS.split(_CAMEL.sub("_", name).lower()) if w]
    if not words:
        return False
    return words[-1] in _SECRET_LAST_WORDS or "".join(words[-2:]) in _SECRET_LAST_PAIRS


def _looks_like_credential(text: str) -> bool:
    # Long and not a plain word, so prose such as "Bearer tokens" or "Basic troubleshooting"
    # survives while real credentials (digits, base64 punctuation, mixed case) do not.
    if len(text) < 8:
        return False
    if any(c.isdigit() or c in "+/=-._~" for c in text):
        return True
    rest = text[1:]
    return any(c.isupper() for c in rest) and any(c.islower() for c in rest)


# Every match of _SCAN contains one of these (compared lowercased): text with none of them is
# passed over without running the scan, which is most lines of a log.
_SCAN_MARKERS = (
    "xox",
    "xapp-",
    "akia",
    "asia",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "sk-",
    "eyj",
    "bearer",
    "basic",
    "token",
    "passw",
    "pwd",
    "secret",
    "apikey",
    "api-key",
    "api_key",
    "api.key",
    "authorization",
    "cookie",
    "private",
    "credential",
)


def _may_hold_secret(text: str) -> bool:
    # map over a bound method runs the whole search in C: no Python frame per marker.
    return any(map(text.lower().__contains__, _SCAN_MARKERS))


def _scan(text: str) -> tuple[str, int]:
    """Replace token shapes, scheme credentials and secret key=value pairs in one string."""
    if not _may_hold_secret(text):
        return text, 0
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        if match.group("shape"):
            count += 1
            return REDACTED
        if match.group("scheme"):
            head = match.group("scheme") + match.group("space")
            credential = match.group("credential")
            if _looks_like_credential(credential):
                count += 1
                return head + REDACTED
            # A plain word after the scheme may still be a token shape (an all-caps AWS key id).
            credential, found = _scan(credential)
            count += found
            return head + credential
        value = match.group("value")
        if not is_secret_key(match.group("key")):
            # "credential-leak-20261126: api down" names no secret; its value may hold one.
            rest, found = _scan(value)
            count += found
            return match.group("key") + match.group("sep") + rest
        quote = value[0] if value[0] in "\"'" else ""
        if value.strip(quote).endswith(REDACTED):
            return match.group(0)
        count += 1
        return match.group("key") + match.group("sep") + quote + REDACTED + quote

    return _SCAN.sub(replace, text), count


class Redactor:
    """Replaces secrets in any JSON-like value with "[REDACTED]" and counts the replacements.

    `personal` is the personal data the install redacts from what arrives from outside; only
    `redact(..., personal=True)` applies it.
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        patterns: Iterable[str] = (),
        personal: PersonalDataRedactor | None = None,
    ) -> None:
        self._secrets = frozenset(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)
        self._patterns = tuple(patterns)
        self.personal = personal
        # Longest first, so a secret that contains another is replaced whole.
        known = sorted(self._secrets, key=len, reverse=True)
        self._known = re.compile("|".join(map(re.escape, known))) if known else None
        self._extra = tuple(re.compile(p) for p in self._patterns)
        # Mapping keys repeat from record to record ("status", "url"): redact each name once,
        # and decide once whether it names a secret.
        self._keys: dict[tuple[str, bool], tuple[str, int, bool]] = {}

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        """A new redactor that also knows these secret values; this one is unchanged."""
        return Redactor(self._secrets | frozenset(secrets), self._patterns, self.personal)

    def redact(self, value: Any, *, personal: bool = False) -> tuple[Any, int]:
        """A deep copy of `value` with secrets replaced, and how many replacements were made.

        `personal=True` replaces the chosen personal data too, after the secrets.
        """
        if isinstance(value, str):
            return self._redact_text(value, personal)
        if type(value) is dict or isinstance(value, Mapping):
            return self._redact_mapping(value, personal)
        if isinstance(value, list | tuple):
            pairs = [self.redact(item, personal=personal) for item in value]
            items = [item for item, _ in pairs]
            return (tuple(items) if isinstance(value, tuple) else items), sum(n for _, n in pairs)
        return value, 0

    def _redact_mapping(
        self, value: Mapping[Any, Any], personal: bool
    ) -> tuple[dict[Any, Any], int]:
        out: dict[Any, Any] = {}
        total = 0
        for key, item in value.items():
            if isinstance(key, str):
                key, n, secret = self._redact_key(key, personal)
                total += n
                if secret and _worth_hiding(item):
                    out[key] = REDACTED
                    total += 1
                    continue
            out[key], n = self.redact(item, personal=personal)
            total += n
        return out, total

    def _redact_key(self, key: str, personal: bool) -> tuple[str, int, bool]:
        """The key with secrets replaced, how many, and whether (so replaced) it names a secret."""
        known = self._keys.get((key, personal))
        if known is None:
            redacted, n = self._redact_text(key, personal)
            known = (redacted, n, is_secret_key(redacted))
            if len(self._keys) < _KEY_CACHE_SIZE:
                self._keys[(key, personal)] = known
        return known

    def _redact_text(self, text: str, personal: bool = False) -> tuple[str, int]:
        total = 0
        if self._known is not None:
            text, n = self._known.subn(REDACTED, text)
            total += n
        for pattern in self._extra:
            text, n = pattern.subn(REDACTED, text)
            total += n
        if "PRIVATE KEY" in text:
            text, n = _PEM.subn(REDACTED, text)
            total += n
        if "://" in text and "@" in text:
            text, n = _redact_url_passwords(text)
            total += n
        text, n = _scan(text)
        total += n
        if personal and self.personal is not None:
            # After the secrets: a token holding digits or an `@` is gone whole before this.
            text, n = self.personal.redact(text)
            total += n
        return text, total


def _redact_url_passwords(text: str) -> tuple[str, int]:
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        if match.group("password") == REDACTED:
            return match.group(0)
        count += 1
        return match.group("head") + REDACTED

    return _URL_PASSWORD.sub(replace, text), count


def _worth_hiding(value: Any) -> bool:
    # `{"token": null}` or `{"token_valid": true}` hides nothing; replacing them would mislead.
    return value is not None and value != "" and not isinstance(value, bool) and value != REDACTED
