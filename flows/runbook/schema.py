"""The runbook schema: exported as JSON Schema (`runbook schema`) and used to explain mistakes.

Editors pick the JSON Schema up through `# yaml-language-server: $schema=...`. The pydantic models
are its single source, so the schema, the validator and its messages cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from flows.errors import Problem
from flows.runbook.hints import line_of, suggest
from flows.runbook.model import IDENTIFIER, FrontMatter, GatePolicy, StepSpec

SCHEMA_ID = "urn:runbook-engine:schema:runbook"


def runbook_schema() -> dict[str, Any]:
    """A draft 2020-12 JSON Schema for the front matter, with the ```step and ```gate blocks
    under `$defs` (`StepSpec`, `GatePolicy`)."""
    schema = FrontMatter.model_json_schema(by_alias=True)
    step = StepSpec.model_json_schema(by_alias=True)
    gate = GatePolicy.model_json_schema(by_alias=True)
    definitions = {
        **schema.get("$defs", {}),
        **step.pop("$defs", {}),
        **gate.pop("$defs", {}),
        "StepSpec": step,
        "GatePolicy": gate,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "Runbook front matter",
        "$defs": definitions,
    }


def validation_problems(
    error: ValidationError,
    model: type[BaseModel],
    *,
    path: Path,
    what: str,
    lines: dict[str, int],
    line: int,
) -> list[Problem]:
    """Turn a pydantic error into Problems at the offending keys' lines, naming allowed keys."""
    problems = []
    for detail in error.errors():
        loc = tuple(str(part) for part in detail["loc"])
        parent, key = loc[:-1], loc[-1] if loc else ""
        where = f" in {'.'.join(parent)}" if parent else ""
        if detail["type"] == "extra_forbidden":
            allowed = allowed_keys(model, parent)
            message = f"{what}: unknown key '{key}'{where}"
            hint = suggest(key, allowed, known="allowed keys", listing=True)
        elif detail["type"] == "missing":
            message = f"{what}: missing required key '{key}'{where}"
            hint = f"add `{key}:`"
            loc = parent
        else:
            value = detail.get("input")
            got = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
            message = f"{what}: {'.'.join(loc)}: {detail['msg']}{got}"
            hint = _field_description(model, loc)
            if detail.get("ctx", {}).get("pattern") == IDENTIFIER:
                hint = "ids use lowercase letters, digits, '-' and '_'"
        problems.append(Problem(path, line_of(lines, loc, line), message, hint))
    return problems


def allowed_keys(model: type[BaseModel], loc: Sequence[str]) -> list[str]:
    """The keys the (nested) model at `loc` accepts, by their YAML names."""
    target = _model_at(model, loc)
    if target is None:
        return []
    return [info.alias or name for name, info in target.model_fields.items()]


def _model_at(model: type[BaseModel], loc: Sequence[str]) -> type[BaseModel] | None:
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {info.alias or name: info for name, info in annotation.model_fields.items()}
            if part not in fields:
                return None
            annotation = fields[part].annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        else:
            return None
    annotation = _unwrap(annotation)
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation if is_model else None


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X, so optional sections are navigated like required ones."""
    if get_origin(annotation) in (Union, type(int | None)):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _field_description(model: type[BaseModel], loc: Sequence[str]) -> str:
    owner = _model_at(model, loc[:-1]) if loc else None
    if owner is None:
        return ""
    for name, info in owner.model_fields.items():
        if loc[-1] in (name, info.alias):
            return info.description or ""
    return ""
