"""Turn `--input key=value` strings (or alert-mapped values) into the runbook's typed inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flows.errors import Problem, RunbookError
from flows.runbook.model import InputSpec, Runbook

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """Split `key=value` strings; a pair without `=` is a usage error."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise RunbookError(f"--input {pair!r} is not key=value")
        values[key.strip()] = value
    return values


def _coerce(name: str, spec: InputSpec, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        if spec.type == "integer":
            return int(value)
        if spec.type == "number":
            return float(value)
    except ValueError:
        raise ValueError(f"input {name!r} must be a {spec.type}, got {value!r}") from None
    if spec.type == "boolean":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"input {name!r} must be true or false, got {value!r}")
    return value


def resolve_inputs(runbook: Runbook, given: Mapping[str, Any]) -> dict[str, Any]:
    """Typed inputs with defaults applied; every problem is reported at the input's line."""
    declared = runbook.meta.inputs
    problems: list[Problem] = []
    line = runbook.meta_lines.get("inputs", 1)
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            problems.append(
                Problem(runbook.path, line, f"unknown input {name!r}", f"declared inputs: {known}")
            )
    resolved: dict[str, Any] = {}
    for name, spec in declared.items():
        where = runbook.meta_lines.get(f"inputs.{name}", line)
        if name in given:
            try:
                resolved[name] = _coerce(name, spec, given[name])
            except ValueError as error:
                problems.append(Problem(runbook.path, where, str(error)))
        elif spec.default is not None:
            resolved[name] = spec.default
        elif spec.required:
            problems.append(
                Problem(
                    runbook.path,
                    where,
                    f"input {name!r} is required",
                    f"pass --input {name}=VALUE",
                )
            )
        else:
            resolved[name] = ""
    if problems:
        raise RunbookError(problems)
    return resolved


def secret_values(runbook: Runbook, inputs: Mapping[str, Any]) -> list[str]:
    """The values of inputs marked `secret: true`, for redaction."""
    return [
        str(inputs[name])
        for name, spec in runbook.meta.inputs.items()
        if spec.secret and inputs.get(name) not in (None, "")
    ]
