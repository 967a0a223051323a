"""Reading untrusted webhook bodies: bounded JSON, typed field access, and errors that say where.

Every reader raises `PayloadError` naming the offending field (`alerts[2].labels.team`), so a
sender's operator can fix its configuration from our answer alone.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from integrations.alerts import PayloadError

MAX_BODY = 1 << 20
"""Largest body we parse (bytes); larger is answered 413."""
MAX_ALERTS = 1000
"""Most alerts in one delivery; Alertmanager `max_alerts` / Grafana "Max Alerts" keep under it."""
MAX_DEPTH = 32
"""Deepest JSON nesting accepted; the real payloads nest five levels at most."""
RESERVED = frozenset({"source", "identity", "status", "starts_at", "labels", "annotations"})
"""Keys never copied into `Alert.fields`: they would shadow the alert's own in templates."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or PayloadError: 413 too large, 400 not JSON, 422 too deep."""
    if len(body) > MAX_BODY:
        raise PayloadError(f"body is larger than {MAX_BODY} bytes", status=413)
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, over-long integers
        raise PayloadError(f"body is not JSON: {error}", status=400) from None
    if not isinstance(document, dict):
        raise PayloadError("body is not a JSON object", status=400)
    _check_tree(document)
    return document


def _check_tree(document: dict[str, Any]) -> None:
    # Iterative, so a document json.loads accepted can never overflow our own stack. Escaped
    # lone surrogates ("\ud800") decode to strings no UTF-8 sink (SQLite, the ledger) can write.
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, level = pending.pop()
        if level > MAX_DEPTH:
            raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            pending.extend((key, level) for key in value)
            pending.extend((child, level + 1) for child in value.values())
        elif isinstance(value, list):
            pending.extend((child, level + 1) for child in value)
        elif isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError:
                raise PayloadError("body holds a lone surrogate escape", status=400) from None


def path(where: str, key: str) -> str:
    """The dotted name of `key` inside `where` (the top level when `where` is empty)."""
    return f"{where}.{key}" if where else key


def kind(value: Any) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def scalar_text(value: Any, where: str) -> str:
    """A label-like value as text: strings as they are, numbers and booleans as JSON spells them."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise PayloadError(f"{where} must be a string, not {kind(value)}")


def text(document: dict[str, Any], key: str, where: str) -> str | None:
    """`document[key]` as a string (numbers accepted); None when absent, null or empty."""
    value = document.get(key)
    if value is None or value == "":
        return None
    return scalar_text(value, path(where, key))


def required_text(document: dict[str, Any], key: str, where: str) -> str:
    """`document[key]` as a non-empty string (numbers accepted); 422 naming it when missing."""
    value = text(document, key, where)
    if value is None:
        raise PayloadError(f"{path(where, key)} is required")
    return value


def mapping(document: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """`document[key]` as an object; absent or null is an empty one."""
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{path(where, key)} must be an object, not {kind(value)}")
    return value


def string_map(document: dict[str, Any], key: str, where: str) -> dict[str, str]:
    """`document[key]` as labels: an object whose values are coerced to strings."""
    values = mapping(document, key, where)
    return {name: scalar_text(v, path(path(where, key), name)) for name, v in values.items()}


def alert_entries(document: dict[str, Any], key: str = "alerts") -> list[dict[str, Any]]:
    """`document[key]`: a required list of at most MAX_ALERTS objects."""
    entries = document.get(key)
    if entries is None:
        raise PayloadError(f"{key} is required")
    if not isinstance(entries, list):
        raise PayloadError(f"{key} must be a list, not {kind(entries)}")
    if len(entries) > MAX_ALERTS:
        raise PayloadError(f"{key} holds more than {MAX_ALERTS} alerts", status=413)
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise PayloadError(f"{key}[{index}] must be an object, not {kind(entry)}")
    return entries


def status(value: Any, where: str, default: str | None = None) -> str:
    """`firing` or `resolved`; anything else is a 422 naming the field."""
    if value is None and default is not None:
        return default
    if value not in ("firing", "resolved"):
        raise PayloadError(f'{where} must be "firing" or "resolved"')
    return str(value)


def labels_digest(labels: dict[str, str]) -> str:
    """A stable 16-hex-digit digest of a label set, standing in for a missing fingerprint."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def present(**values: Any) -> dict[str, Any]:
    """The keyword arguments that are not None: fields without empty slots."""
    return {key: value for key, value in values.items() if value is not None}
