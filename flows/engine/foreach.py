"""A step's `for_each`: the items it runs over, how each item is named, and what the ledger says
of them, so a resume runs only the items that have not finished.

An item is named `<step>[<index>]`: in its ledger records (their `step`), as its Prefect task
run, and in its actions' dedupe key (`<incident>:<step>[<index>]`), so a ticket or message made
for item 0 is found again, not made twice, when the step runs once more.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from flows.evidence.records import Event, Record
from flows.runbook.model import Step
from flows.runbook.templates import TemplateFailure, evaluate_value, render_value

MAX_ITEMS = 500
"""The most items one step runs over: a list longer than this is a mistake, not a workload."""


def item_id(step_id: str, index: int) -> str:
    """The name of item `index` of a for_each step (`scan[0]`); no step id can look like it."""
    return f"{step_id}[{index}]"


def for_each_items(step: Step, context: Mapping[str, Any], *, where: str) -> list[Any]:
    """The items of a for_each step, its templates rendered in `context`; TemplateFailure when
    they are not a list (text splits at commas, or parses as a JSON list) or too many."""
    spec = step.spec.for_each
    if isinstance(spec, list):
        items = [render_value(value, context, where=where) for value in spec]
    else:
        value = evaluate_value(spec or "", context, where=where)
        found = _as_items(value)
        if found is None:
            shown = repr(value)[:80]
            raise TemplateFailure(
                f"for_each of {where} gave {type(value).__name__} {shown}, not a list"
            )
        items = found
    if len(items) > MAX_ITEMS:
        raise TemplateFailure(
            f"for_each of {where} gave {len(items)} items; at most {MAX_ITEMS} run in one step"
        )
    return items


def _as_items(value: Any) -> list[Any] | None:
    if isinstance(value, list | tuple | range):
        return list(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    # Inputs are text: `--input hosts=web-1,web-2` is the list a responder means.
    return [part.strip() for part in text.split(",") if part.strip()]


def recorded_items(records: Iterable[Record]) -> dict[str, list[Any]]:
    """For each for_each step that started: the items (as recorded, redacted) it started with."""
    found: dict[str, list[Any]] = {}
    for record in records:
        items = record.data.get("for_each")
        if record.event is Event.STEP_STARTED and record.step and isinstance(items, list):
            found[record.step] = items
    return found


def recorded_counts(records: Iterable[Record]) -> dict[str, int]:
    """For each for_each step that succeeded: how many items it ran over."""
    found: dict[str, int] = {}
    for record in records:
        count = record.data.get("items")
        if record.event is Event.STEP_SUCCEEDED and record.step and isinstance(count, int):
            found[record.step] = count
    return found
