"""Every alert source refuses bodies that are not JSON objects, too large or too deep, alike."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

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
from integrations.alerts.payload import MAX_ALERTS, MAX_BODY, MAX_DEPTH

Parser = Callable[[bytes, Mapping[str, str]], list[Alert]]
PARSERS: dict[str, Parser] = {
    "alertmanager": alertmanager.parse,
    "grafana": grafana.parse,
    "datadog": datadog.parse,
    "pagerduty": pagerduty.parse,
    "generic": generic.parse,
}
LISTS: dict[str, Callable[[list[object]], dict[str, object]]] = {
    "alertmanager": lambda alerts: {"groupKey": "g", "alerts": alerts},
    "grafana": lambda alerts: {"alerts": alerts},
    "generic": lambda alerts: {"alerts": alerts},
}


def nested(depth: int) -> bytes:
    """A generic alert whose fields nest `depth` lists, so the document is `depth` + 2 deep."""
    return b'{"id": "a", "fields": {"x": ' + b"[" * depth + b"]" * depth + b"}}"


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS.keys())
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2]",
        b'"text"',
        b"null",
        b'{"id": NaN}',
        b'{"id": 1' + b"1" * 5000 + b"}",
        b'{"id": "a",}',
    ],
    ids=["empty", "text", "binary", "list", "string", "null", "nan", "huge-int", "trailing-comma"],
)
def test_non_json_or_non_object_is_400(parse: Parser, body: bytes) -> None:
    """A body that is not a standard JSON object is answered 400."""
    with pytest.raises(PayloadError) as refused:
        parse(body, {})
    assert refused.value.status == 400


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS.keys())
@pytest.mark.parametrize("text", [rb'"\ud800"', rb'"a\udfffb"'])
def test_lone_surrogate_escapes_are_400(parse: Parser, text: bytes) -> None:
    """Escaped lone surrogates, which no UTF-8 store can write, are refused with 400."""
    with pytest.raises(PayloadError, match="surrogate") as refused:
        parse(b'{"id": "a", "labels": {"k": ' + text + b"}, " + text + b": 1}", {})
    assert refused.value.status == 400


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS.keys())
def test_body_over_one_mebibyte_is_413(parse: Parser) -> None:
    """A body larger than MAX_BODY is refused with 413 before it is parsed."""
    body = b'{"id": "' + b"a" * MAX_BODY + b'"}'
    with pytest.raises(PayloadError) as refused:
        parse(body, {})
    assert refused.value.status == 413


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS.keys())
@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, 100_000], ids=["over-cap", "over-recursion"])
def test_deep_nesting_is_422(parse: Parser, depth: int) -> None:
    """JSON nested deeper than MAX_DEPTH (even past Python's recursion limit) is refused."""
    with pytest.raises(PayloadError, match="nested deeper") as refused:
        parse(nested(depth), {})
    assert refused.value.status == 422


def test_nesting_up_to_the_cap_is_accepted() -> None:
    """A document exactly MAX_DEPTH deep is parsed."""
    (alert,) = generic.parse(nested(MAX_DEPTH - 2), {})
    assert alert.identity == "a"


@pytest.mark.parametrize("source", LISTS.keys())
def test_more_than_max_alerts_is_413(source: str) -> None:
    """A delivery with more than MAX_ALERTS alerts is refused with 413."""
    entry = {"id": "a", "status": "firing", "startsAt": "t", "labels": {}}
    body = json.dumps(LISTS[source]([entry] * (MAX_ALERTS + 1))).encode()
    with pytest.raises(PayloadError, match="more than") as refused:
        PARSERS[source](body, {})
    assert refused.value.status == 413


@pytest.mark.parametrize("source", LISTS.keys())
def test_max_alerts_is_accepted(source: str) -> None:
    """Exactly MAX_ALERTS alerts are parsed."""
    entry = {"id": "a", "status": "firing", "startsAt": "t", "labels": {}}
    body = json.dumps(LISTS[source]([entry] * MAX_ALERTS)).encode()
    assert len(PARSERS[source](body, {})) == MAX_ALERTS


@pytest.mark.parametrize("source", LISTS.keys())
def test_unknown_fields_are_ignored(source: str) -> None:
    """Keys a source may add later do not break parsing."""
    entry = {"id": "a", "status": "firing", "startsAt": "t", "newThing": {"x": [1]}}
    document = {**LISTS[source]([entry]), "anotherNewThing": True}
    assert len(PARSERS[source](json.dumps(document).encode(), {})) == 1
