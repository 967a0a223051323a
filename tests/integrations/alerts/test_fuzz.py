"""Fuzzing every alert source: any input gives Alerts or a PayloadError, never another exception."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from integrations.alerts import (
    Alert,
    PayloadError,
    alertmanager,
    datadog,
    generic,
    grafana,
    pagerduty,
)

PAYLOADS = Path(__file__).parent / "payloads"
PARSERS: dict[str, Callable[[bytes, Mapping[str, str]], list[Alert]]] = {
    "alertmanager": alertmanager.parse,
    "grafana": grafana.parse,
    "datadog": datadog.parse,
    "pagerduty": pagerduty.parse,
    "generic": generic.parse,
}
KEYS = [
    "alerts", "status", "labels", "annotations", "startsAt", "endsAt", "fingerprint", "groupKey",
    "receiver", "externalURL", "generatorURL", "values", "orgId", "title", "state", "message",
    "id", "fields", "starts_at", "event", "event_type", "resource_type", "data", "type",
    "incident", "service", "priority", "summary", "urgency", "number", "alert_id",
    "alert_cycle_key", "transition", "tags", "source", "identity",
]  # fmt: skip
CASES = 1500


SCALARS: list[Callable[[random.Random], Any]] = [
    lambda rng: rng.choice([None, True, False, "", "firing", "resolved", "incident", "Recovered"]),
    lambda rng: rng.choice(["incident.triggered", "incident.resolved", "$ALERT_ID", "a:b,c"]),
    lambda rng: rng.randint(-(10**30), 10**30),
    lambda rng: rng.random() * 10 ** rng.randint(-5, 300),
    lambda rng: "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 12))),
    lambda rng: chr(rng.randint(0xD800, 0xDFFF)),
]


def random_scalar(rng: random.Random) -> Any:
    return rng.choice(SCALARS)(rng)


def random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.45:
        return random_scalar(rng)
    if roll < 0.7:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def mutate(rng: random.Random, document: Any) -> Any:
    """Replace or delete one randomly chosen node of a real payload."""
    if isinstance(document, dict) and document and rng.random() < 0.8:
        key = rng.choice(list(document))
        if rng.random() < 0.2:
            return {k: v for k, v in document.items() if k != key}
        return {**document, key: mutate(rng, document[key])}
    if isinstance(document, list) and document and rng.random() < 0.8:
        index = rng.randrange(len(document))
        return [*document[:index], mutate(rng, document[index]), *document[index + 1 :]]
    return random_json(rng)


def check(parse: Callable[[bytes, Mapping[str, str]], list[Alert]], body: bytes) -> None:
    try:
        alerts = parse(body, {"x-webhook-id": "d"})
    except PayloadError as error:
        assert error.status in (400, 413, 422)
    else:
        assert all(isinstance(alert, Alert) for alert in alerts)


@pytest.mark.parametrize("source", PARSERS.keys())
def test_random_bytes(source: str) -> None:
    """Random bytes, including truncated real payloads, never raise anything but PayloadError."""
    rng = random.Random(f"bytes-{source}")
    real = [p.read_bytes() for p in (PAYLOADS / source).glob("*.json")]
    for _ in range(CASES):
        if rng.random() < 0.5:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        else:
            sample = rng.choice(real)
            body = sample[: rng.randrange(len(sample))]
        check(PARSERS[source], body)


@pytest.mark.parametrize("source", PARSERS.keys())
def test_random_json(source: str) -> None:
    """Random JSON built from the sources' own keys never raises anything but PayloadError."""
    rng = random.Random(f"json-{source}")
    for _ in range(CASES):
        check(PARSERS[source], json.dumps(random_json(rng)).encode())


@pytest.mark.parametrize("source", PARSERS.keys())
def test_mutated_real_payloads(source: str) -> None:
    """Real payloads with one node replaced or removed parse or fail with PayloadError."""
    rng = random.Random(f"mutate-{source}")
    real = [json.loads(p.read_bytes()) for p in (PAYLOADS / source).glob("*.json")]
    parsed = 0
    for _ in range(CASES):
        document = rng.choice(real)
        for _ in range(rng.randint(1, 3)):
            document = mutate(rng, document)
        try:
            PARSERS[source](json.dumps(document).encode(), {})
            parsed += 1
        except PayloadError as error:
            assert error.status in (400, 413, 422)
    assert parsed > 0  # the mutations must also reach the success path
