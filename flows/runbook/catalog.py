"""What checking a runbook needs to know of the actions it uses, and nothing more.

The engine's action registry satisfies this; the runbook layer never imports the engine, so a
document can be checked without loading any integration code or Prefect.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel


class ActionSpec(Protocol):
    """An action as validation sees it: its name, argument model and declared outputs."""

    @property
    def name(self) -> str: ...

    @property
    def args(self) -> type[BaseModel]: ...

    @property
    def outputs(self) -> tuple[str, ...]: ...


class ActionCatalog(Protocol):
    """The actions a runbook may use, by `uses:` name."""

    def get(self, name: str) -> ActionSpec | None:
        """The action with this name, or None."""
        ...

    def names(self) -> list[str]:
        """All action names, sorted."""
        ...
