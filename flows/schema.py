"""The JSON Schema of a runbook's front matter and of a ```step block (`runbook schema`).

Editors pick it up through `# yaml-language-server: $schema=...`; the pydantic models are its
single source, so the schema and the validator cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from flows.model import FrontMatter, StepSpec

SCHEMA_ID = "urn:runbook-engine:schema:runbook"


def runbook_schema() -> dict[str, Any]:
    """A draft 2020-12 JSON Schema for the front matter, with the step block under `$defs`."""
    schema = FrontMatter.model_json_schema(by_alias=True)
    step = StepSpec.model_json_schema(by_alias=True)
    definitions = {**schema.get("$defs", {}), **step.pop("$defs", {}), "StepSpec": step}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "Runbook front matter",
        "$defs": definitions,
    }
