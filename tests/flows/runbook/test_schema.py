"""The published JSON Schema: valid itself, and agreeing with the validator on real documents."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from flows.runbook.schema import runbook_schema
from tests.support import FIXTURES


def front_matter(text: str) -> dict:
    return yaml.safe_load(text.split("---\n")[1])


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    """`runbook schema` output is itself a valid JSON Schema."""
    jsonschema.Draft202012Validator.check_schema(runbook_schema())


def test_schema_accepts_a_valid_runbook_front_matter() -> None:
    """The fixture runbook's front matter passes the schema."""
    meta = front_matter((FIXTURES / "runbooks" / "gated.md").read_text())
    jsonschema.Draft202012Validator(runbook_schema()).validate(meta)


def test_schema_rejects_unknown_front_matter_keys() -> None:
    """An unknown front-matter key fails the schema as it fails `validate`."""
    meta = front_matter((FIXTURES / "runbooks" / "gated.md").read_text())
    with pytest.raises(jsonschema.ValidationError, match="owners"):
        jsonschema.Draft202012Validator(runbook_schema()).validate({**meta, "owners": "x"})


def test_schema_step_definition_rejects_unknown_step_keys() -> None:
    """The step definition in $defs rejects a key steps do not have."""
    schema = runbook_schema()
    step_schema = {"$defs": schema["$defs"], **schema["$defs"]["StepSpec"]}
    validator = jsonschema.Draft202012Validator(step_schema)
    validator.validate({"id": "ticket", "uses": "jira.create_issue", "with": {"project": "X"}})
    with pytest.raises(jsonschema.ValidationError, match="retry"):
        validator.validate({"id": "ticket", "uses": "jira.create_issue", "retry": 2})
