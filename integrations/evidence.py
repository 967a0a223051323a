"""The `evidence.note` action: a responder's or runbook's own note in the incident's ledger."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flows.contract.actions import Action, ActionContext, Reach
from flows.evidence.records import Event


class NoteArgs(BaseModel):
    """Arguments of `evidence.note`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, description="What to record, in words an auditor can read.")
    data: dict[str, Any] = Field(
        default_factory=dict, description="Structured facts to keep beside the text."
    )


def note(args: NoteArgs, ctx: ActionContext) -> dict[str, Any]:
    """Write a `note` record to the evidence ledger; return its sequence number."""
    data = {"text": args.text, "data": args.data}
    return {"seq": ctx.evidence.record(Event.NOTE, step=ctx.step, data=data).seq}


ACTIONS = (
    Action(
        name="evidence.note",
        args=NoteArgs,
        run=note,
        outputs=("seq",),
        description="Write a note into the incident's evidence ledger.",
        side_effects=False,
        reach=Reach.EVIDENCE,
    ),
)
