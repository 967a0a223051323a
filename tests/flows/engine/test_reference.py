"""The generated actions reference: complete, and the committed docs/actions.md is current."""

from __future__ import annotations

from pydantic import BaseModel

from flows.contract.actions import Action, ActionContext, ActionRegistry
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


class NoArgs(BaseModel):
    """No arguments."""


def _act(args: NoArgs, ctx: ActionContext) -> dict[str, str]:
    return {}


def section(text: str, name: str) -> str:
    """The reference's section on one action."""
    return text.split(f"## `{name}`\n", 1)[1].split("\n## ", 1)[0]


def test_reference_shows_each_actions_reach() -> None:
    """Each section names what the action reaches, and whether a drill runs or simulates it."""
    text = actions_reference(default_registry())
    assert "Reach: `ports` (" in section(text, "jira.create_issue")
    assert "Reach: `outside` (" in section(text, "shell.run")
    assert "simulated in drills" in section(text, "shell.run")
    assert "Reach: `evidence` (" in section(text, "evidence.note")


def test_reference_shows_an_undeclared_reach_and_secret_outputs() -> None:
    """An action that declares no reach is shown as such; its secret outputs are listed."""
    minted = Action("vault.mint", NoArgs, _act, outputs=("token",), secret_outputs=("token",))
    shown = section(actions_reference(ActionRegistry([minted])), "vault.mint")
    assert "Reach: `undeclared` (not declared; simulated in drills)." in shown
    assert "Secret outputs, redacted in the ledger and chat: `token`." in shown


def test_committed_reference_matches_the_code() -> None:
    """docs/actions.md is what `runbook actions` prints (regenerate it after changing actions)."""
    committed = (PROJECT / "docs" / "actions.md").read_text()
    assert committed == actions_reference(default_registry()), (
        "docs/actions.md is stale: run `runbook actions > docs/actions.md`"
    )
