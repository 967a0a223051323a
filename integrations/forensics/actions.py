"""The `forensics.snapshot` action: run collectors, store what they gather, record custody.

Every stored artifact gets an `artifact.collected` ledger record saying who collected what,
where, when, with which (redacted) arguments, its hash, and what was redacted from it (in all,
and the personal data by kind): the chain of custody. A collector that fails gets an
`artifact.failed` record and the others still run.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.contract.actions import Action, ActionContext, Reach
from flows.errors import StepFailed
from flows.evidence.records import Event
from flows.times import utc_stamp
from integrations.forensics.collectors import command, files, host, model, web
from integrations.forensics.collectors.base import Kit, Missed, Piece
from integrations.forensics.redaction import Counted, redact_value
from integrations.forensics.store import ArtifactStore

CollectorSpec = Annotated[
    command.CommandSpec
    | files.FileSpec
    | files.LogTailSpec
    | web.HttpSpec
    | host.ProcessesSpec
    | host.SystemSpec
    | host.EnvironmentSpec
    | model.ModelSpec,
    Field(discriminator="type"),
]

COLLECTORS: dict[str, Callable[[Any, Kit], Iterator[Piece]]] = {
    "command": command.collect,
    "file": files.collect_files,
    "log_tail": files.collect_log_tail,
    "http": web.collect,
    "processes": host.collect_processes,
    "system": host.collect_system,
    "environment": host.collect_environment,
    "model": model.collect,
}


class SnapshotArgs(BaseModel):
    """Arguments of `forensics.snapshot`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    collectors: list[CollectorSpec] = Field(
        min_length=1, description="What to collect, each `{type: ..., ...}`: see docs/forensics.md."
    )
    label: str = Field(default="", description="A few words on why, kept in each custody record.")

    @model_validator(mode="after")
    def _models_named_apart(self) -> SnapshotArgs:
        names = [spec.name for spec in self.collectors if isinstance(spec, model.ModelSpec)]
        if twice := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(
                f"model collectors share the name {', '.join(twice)}: give each its own "
                "`name` (its outputs are steps.<step>.models.<name>)"
            )
        return self


def snapshot(args: SnapshotArgs, ctx: ActionContext) -> dict[str, Any]:
    """Run every collector; return the stored artifacts, the failures, the redaction count and
    each model collector's numbers (`model`: the one named `model`; `models`: all by name)."""
    evidence_dir = ctx.evidence_dir or ctx.home
    # What is collected arrived from outside: personal data goes too, not only secrets.
    redact = ctx.redact_collected or ctx.redact
    kit = Kit(ArtifactStore(evidence_dir), redact, ctx.deadline, ctx.incident)
    who = {"host": socket.gethostname(), "user": _user(), "pid": os.getpid()}
    artifacts: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    redactions = 0
    models: dict[str, Any] = {}
    for spec in args.collectors:
        counted = Counted(redact)
        about = {
            "collector": spec.type,
            "label": redact(args.label),
            "args": redact_value(spec.model_dump(mode="json", exclude={"type"}), counted),
            **who,
        }
        for piece, started, finished in _timed(COLLECTORS[spec.type](spec, kit)):
            when = {"started_at": started, "finished_at": finished}
            if isinstance(piece, Missed):
                failure = {"collector": spec.type, "name": piece.name, "error": piece.error}
                failures.append(failure)
                ctx.evidence.record(
                    Event.ARTIFACT_FAILED, step=ctx.step, data=about | failure | when
                )
                continue
            stored = piece.artifact
            entry = {
                "collector": spec.type,
                "name": redact(piece.name),
                "sha256": stored.sha256,
                "size": stored.size,
                "path": stored.path.relative_to(evidence_dir).as_posix(),
            }
            artifacts.append(entry)
            redactions += stored.redactions
            redacted = {"redactions": stored.redactions, "personal_data": stored.personal_data}
            # Everything in the record is redacted here as the artifact was: the ledger then
            # finds nothing more, and its own count never replaces the artifact's.
            facts = {"facts": redact_value(piece.facts, Counted(redact))}
            if isinstance(spec, model.ModelSpec):
                models[spec.name] = facts["facts"]["summary"]
            custody = entry | when | redacted | facts
            ctx.evidence.record(Event.ARTIFACT_COLLECTED, step=ctx.step, data=about | custody)
    if failures and not artifacts:
        raise StepFailed(
            "every collector failed: "
            + "; ".join(f"{f['collector']} {f['name']}: {f['error']}" for f in failures)
        )
    return {
        "artifacts": artifacts,
        "failures": failures,
        "redactions": redactions,
        "model": models.get("model"),
        "models": models,
    }


def _timed(pieces: Iterator[Piece]) -> Iterator[tuple[Piece, str, str]]:
    """Each piece with when its collection started and finished; a collector's error is a miss."""
    started = utc_stamp()
    while True:
        try:
            piece = next(pieces)
        except StopIteration:
            return
        except (StepFailed, OSError) as err:
            # A collector that cannot go on loses only its own evidence, not the snapshot.
            yield Missed(_what_failed(err), _reason(err)), started, utc_stamp()
            return
        finished = utc_stamp()
        yield piece, started, finished
        started = utc_stamp()


def _what_failed(err: Exception) -> str:
    return str(getattr(err, "filename", None) or "")


def _reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # A container user without a passwd entry still has a uid worth recording.
        return str(os.getuid())


ACTIONS = (
    Action(
        name="forensics.snapshot",
        args=SnapshotArgs,
        run=snapshot,
        outputs=("artifacts", "failures", "redactions", "model", "models"),
        description="Collect forensic evidence into content-addressed, read-only artifacts "
        "with a chain-of-custody record each.",
        side_effects=False,
        reach=Reach.OUTSIDE,
    ),
)
