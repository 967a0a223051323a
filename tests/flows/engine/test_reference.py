"""The generated actions reference: complete, and the committed docs/actions.md is current."""

from __future__ import annotations

from flows.engine.reference import actions_reference
from flows.engine.registry import default_registry
from tests.support import PROJECT


def test_reference_documents_every_action_and_argument() -> None:
    """Each registered action has a section listing all of its arguments and outputs."""
    registry = default_registry()
    text = actions_reference(registry)
    for action in registry:
        assert f"## `{action.name}`" in text
        for name, field in action.args.model_fields.items():
            assert f"| `{field.alias or name}` |" in text
        for output in action.outputs:
            assert f"`{output}`" in text


def test_committed_reference_matches_the_code() -> None:
    """docs/actions.md is what `runbook actions` prints (regenerate it after changing actions)."""
    committed = (PROJECT / "docs" / "actions.md").read_text()
    assert committed == actions_reference(default_registry()), (
        "docs/actions.md is stale: run `runbook actions > docs/actions.md`"
    )
