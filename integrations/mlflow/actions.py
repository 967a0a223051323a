"""The `mlflow.*` actions: read a registered model's versions and aliases, move an alias to roll
a model back or forward, and tag a version with the incident.

MLflow deprecated registry stages in 2.9: what serves is what an alias (`champion`, `prod`)
points at, so rolling back is pointing the alias at an earlier version. Moving an alias changes
production, so `mlflow.set_alias` acts once per incident and step: it records what it is about
to do in the local idempotency map before the request goes out, and a retry or resume that finds
the alias already moved by the step records that (`already_done`) and sends nothing. The step's
outputs (the version before and after) go into the ledger like every step's.

They reach an MLflow server by themselves, so drills simulate them. A step marked `drill: run`
reads the real registry but never changes it: its note in the ledger says what it would have
done. The tracking server comes from the settings (RUNBOOK_MLFLOW_URL); this module loads httpx
only when a step runs.
"""

from __future__ import annotations

import re
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from flows.contract.actions import Action, ActionContext, Reach
from flows.errors import StepFailed
from flows.evidence.records import Event
from integrations.config import MlflowConfig

if TYPE_CHECKING:
    from integrations.mlflow.rest import MlflowRegistry, ModelVersion, RegisteredModel

SYSTEM = "mlflow"
"""The idempotency map's name for what these actions made."""
INCIDENT_TAG = "runbook.incident"
REASON_TAG = "runbook.reason"
READY = "READY"


def _version_text(value: Any) -> Any:
    # YAML reads `version: 3` as a number; MLflow numbers versions but speaks of them as text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _not_reserved(alias: str) -> str:
    # MLflow refuses these itself; saying so at `validate` time is kinder than at 3 a.m.
    if alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise ValueError(f"alias {alias!r} is reserved by MLflow (`latest`, `v<number>`)")
    return alias


ModelName = Annotated[str, Field(min_length=1, max_length=256)]
Version = Annotated[
    str,
    BeforeValidator(_version_text),
    Field(pattern=r"^[1-9][0-9]*$", description="A version number, e.g. `3`."),
]
Alias = Annotated[str, Field(pattern=r"^[\w-]+$", max_length=255), AfterValidator(_not_reserved)]
TagKey = Annotated[str, Field(pattern=r"^[\w./ :-]+$", max_length=250)]

MODEL_HELP = "Registered model name, as MLflow shows it."


class ModelVersionsArgs(BaseModel):
    """Arguments of `mlflow.model_versions`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelName = Field(description=MODEL_HELP)
    limit: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="Newest versions listed in `versions` (the ones an alias points at are"
        " always listed); `count` says how many there are.",
    )


class SetAliasArgs(BaseModel):
    """Arguments of `mlflow.set_alias`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelName = Field(description=MODEL_HELP)
    alias: Alias = Field(description="The alias to move, e.g. `champion` (letters, digits, _, -).")
    version: Version = Field(
        description="The version it should point at, e.g. `{{ steps.versions.previous.champion }}`"
        " to roll back to the version before the alias's; it must be READY."
    )
    from_version: Version | None = Field(
        default=None,
        description="Move it only if it points at this version now (e.g. the version a gate"
        " approved rolling back from); otherwise fail, saying where it points.",
    )
    create: bool = Field(
        default=False,
        description="Create the alias when the model has none such; off, a misspelt alias fails"
        " the step instead of leaving production where it was.",
    )


class TagVersionArgs(BaseModel):
    """Arguments of `mlflow.tag_version`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelName = Field(description=MODEL_HELP)
    version: Version | None = Field(
        default=None, description="The version to tag; or give `alias` instead."
    )
    alias: Alias | None = Field(
        default=None, description="Tag the version this alias points at (instead of `version`)."
    )
    reason: str = Field(
        min_length=1,
        max_length=5000,
        description=f"Why, in a sentence; set as tag `{REASON_TAG}` beside `{INCIDENT_TAG}`"
        " (the incident id).",
    )
    tags: dict[TagKey, Annotated[str, Field(max_length=5000)]] = Field(
        default_factory=dict, description="More tags to set, e.g. `{quarantined: 'true'}`."
    )

    @model_validator(mode="after")
    def _one_target(self) -> TagVersionArgs:
        if (self.version is None) == (self.alias is None):
            raise ValueError("give either `version` or `alias`: the version to tag")
        return self


def model_versions(
    args: ModelVersionsArgs, ctx: ActionContext, *, config: MlflowConfig | None
) -> dict[str, Any]:
    """The model's aliases, versions (newest first) and tags; `previous.<alias>` is the newest
    READY version older than the one the alias points at (what a rollback goes back to)."""
    with _registry(config, ctx) as registry:
        model = registry.model(args.model)
        versions = registry.versions(args.model)
    by_alias: dict[str, list[str]] = {}
    for alias, version in sorted(model.aliases.items()):
        by_alias.setdefault(version, []).append(alias)
    listed = [
        _described(v, by_alias.get(v.version, []))
        for index, v in enumerate(versions)
        if index < args.limit or v.version in by_alias
    ]
    return {
        "model": model.name,
        "aliases": model.aliases,
        "previous": {alias: _previous(versions, v) for alias, v in model.aliases.items()},
        "latest": versions[0].version if versions else "",
        "count": len(versions),
        "versions": listed,
        "tags": model.tags,
    }


def set_alias(
    args: SetAliasArgs, ctx: ActionContext, *, config: MlflowConfig | None
) -> dict[str, Any]:
    """Point the alias at the version once per incident and step; return where it pointed
    before and after, whether this step moved it, and whether an earlier attempt already had."""
    from integrations.backends import IDEMPOTENCY_DB
    from integrations.idempotency import IdempotencyMap
    from integrations.mlflow.rest import RegistryError

    with _registry(config, ctx) as registry:
        model = registry.model(args.model)
        _ready(registry, args.model, args.version)
        current = model.aliases.get(args.alias, "")
        if not current and not args.create:
            _aliased(model, args.alias)  # says which aliases the model has
        if ctx.drill:
            return _rehearsed(args, ctx, current)
        made = IdempotencyMap(ctx.home / IDEMPOTENCY_DB)
        wanted = {"model": args.model, "alias": args.alias, "after": args.version}
        done = made.get(SYSTEM, ctx.dedupe_key)
        if done is not None:
            return _found_done(args, ctx, done, wanted, current)
        sent = made.intent(SYSTEM, ctx.dedupe_key)
        if sent is not None and _same(sent, wanted) and current == args.version:
            # An earlier attempt's request moved it, and nobody heard back: it is done.
            made.put(SYSTEM, ctx.dedupe_key, sent)
            return _moved(args, str(sent["before"]), changed=True, already_done=True)
        if args.from_version is not None and current != args.from_version:
            raise StepFailed(
                f"alias {args.alias!r} of model {args.model!r} points at"
                f" {_at(current)}, not version {args.from_version} (`from_version`): it moved"
                " since; look at the model in MLflow, then retry the step or skip it"
            )
        record = {**wanted, "before": current}
        if current == args.version:
            made.put(SYSTEM, ctx.dedupe_key, record)
            return _moved(args, current, changed=False, already_done=False)
        made.intend(SYSTEM, ctx.dedupe_key, record)
        try:
            registry.set_alias(args.model, args.alias, args.version)
        except RegistryError as error:
            if 400 <= error.status < 500 and error.status != 429:
                # A refusal moved nothing: a later alias at the target is not this step's doing.
                made.withdraw(SYSTEM, ctx.dedupe_key)
            raise
        made.put(SYSTEM, ctx.dedupe_key, record)
    return _moved(args, current, changed=True, already_done=False)


def tag_version(
    args: TagVersionArgs, ctx: ActionContext, *, config: MlflowConfig | None
) -> dict[str, Any]:
    """Tag the version with the incident id, the reason and any other tags; return them."""
    tags = {
        INCIDENT_TAG: ctx.incident,
        REASON_TAG: ctx.redact(args.reason),
        **{key: ctx.redact(value) for key, value in args.tags.items()},
    }
    with _registry(config, ctx) as registry:
        version = args.version or _aliased(registry.model(args.model), args.alias or "")
        registry.version(args.model, version)
        if ctx.drill:
            _drill_note(
                ctx,
                f"drill: version {version} of model {args.model!r} would have been tagged;"
                " a drill never changes the registry",
                {"model": args.model, "version": version, "tags": tags},
            )
            return {"model": args.model, "version": version, "tags": {}}
        # Setting a tag to a value is idempotent: a retry sets the same values again.
        for key, value in tags.items():
            registry.tag_version(args.model, version, key, value)
    return {"model": args.model, "version": version, "tags": tags}


def registry_actions(config: MlflowConfig | None) -> tuple[Action, ...]:
    """The `mlflow.*` actions, talking to the tracking server `config` names; None: each step
    fails saying how to configure one."""
    return (
        Action(
            name="mlflow.model_versions",
            args=ModelVersionsArgs,
            run=partial(model_versions, config=config),
            outputs=("model", "aliases", "previous", "latest", "count", "versions", "tags"),
            description="Read a registered model from MLflow: `aliases` (alias -> version, e.g."
            " `steps.versions.aliases.champion`), `previous` (alias -> the newest READY version"
            " before it), `latest`, `count`, `versions` (newest first, each with `version`,"
            " `status`, `run_id`, `source`, `description`, `created`, `aliases`, `tags`) and the"
            " model's `tags`.",
            side_effects=False,
            reach=Reach.OUTSIDE,
        ),
        Action(
            name="mlflow.set_alias",
            args=SetAliasArgs,
            run=partial(set_alias, config=config),
            outputs=("model", "alias", "before", "after", "changed", "already_done"),
            description="Point a registered model's alias at a version in MLflow: roll back or"
            " forward. `before` and `after` are the versions it pointed at (`before` empty when"
            " the alias was new); `changed` says whether this step moved it; `already_done`"
            " that an earlier attempt of the step had, so nothing was sent again.",
            reach=Reach.OUTSIDE,
        ),
        Action(
            name="mlflow.tag_version",
            args=TagVersionArgs,
            run=partial(tag_version, config=config),
            outputs=("model", "version", "tags"),
            description="Tag a model version in MLflow with the incident id"
            f" (`{INCIDENT_TAG}`), a reason (`{REASON_TAG}`) and any other tags; outputs the"
            " tags set.",
            reach=Reach.OUTSIDE,
        ),
    )


def _registry(config: MlflowConfig | None, ctx: ActionContext) -> MlflowRegistry:
    if config is None:
        raise StepFailed(
            "MLflow is not configured: set RUNBOOK_MLFLOW_URL to the tracking server's address"
            " (and RUNBOOK_MLFLOW_TOKEN if it asks for credentials); see"
            " docs/integrations/mlflow.md"
        )
    from integrations.mlflow.rest import MlflowRegistry  # httpx loads when a step runs

    return MlflowRegistry(config, deadline=ctx.deadline)


def _ready(registry: MlflowRegistry, model: str, version: str) -> None:
    """Refuse a version that does not exist or cannot serve: an alias should never point there."""
    found = registry.version(model, version)
    if found.status != READY:
        raise StepFailed(
            f"version {version} of model {model!r} is {found.status or 'of no known status'},"
            f" not {READY}: an alias must point at a version that can serve"
        )


def _found_done(
    args: SetAliasArgs,
    ctx: ActionContext,
    done: dict[str, Any],
    wanted: dict[str, Any],
    current: str,
) -> dict[str, Any]:
    """A retry or resume of a step that already moved the alias: report it, send nothing."""
    said = f"alias {done['alias']!r} of model {done['model']!r} to version {done['after']}"
    if not _same(done, wanted):
        raise StepFailed(
            f"step {ctx.step!r} of incident {ctx.incident!r} already pointed {said}; it now asks"
            f" for alias {args.alias!r} of model {args.model!r} at version {args.version}:"
            " a step moves one alias once, so use another step for this one"
        )
    if current != args.version:
        raise StepFailed(
            f"step {ctx.step!r} already pointed {said}, but it points at {_at(current)} now:"
            " someone moved it since; look at the model in MLflow before moving it again"
            " (by hand, or in another step), then skip this one"
        )
    before = str(done["before"])
    return _moved(args, before, changed=before != args.version, already_done=True)


def _rehearsed(args: SetAliasArgs, ctx: ActionContext, current: str) -> dict[str, Any]:
    """A drill's `drill: run` step: the checks of a real move, a note of it, no move."""
    if args.from_version is not None and current != args.from_version:
        raise StepFailed(
            f"alias {args.alias!r} of model {args.model!r} points at {_at(current)}, not"
            f" version {args.from_version} (`from_version`)"
        )
    would = "would have stayed at" if current == args.version else "would have moved to"
    _drill_note(
        ctx,
        f"drill: alias {args.alias!r} of model {args.model!r} points at {_at(current)} and"
        f" {would} version {args.version}; a drill never moves it",
        {"model": args.model, "alias": args.alias, "before": current, "would_be": args.version},
    )
    return {
        "model": args.model,
        "alias": args.alias,
        "before": current,
        "after": current,
        "changed": False,
        "already_done": False,
    }


def _drill_note(ctx: ActionContext, text: str, data: dict[str, Any]) -> None:
    ctx.evidence.record(Event.NOTE, step=ctx.step, data={"text": text, "data": data})


def _moved(args: SetAliasArgs, before: str, *, changed: bool, already_done: bool) -> dict[str, Any]:
    return {
        "model": args.model,
        "alias": args.alias,
        "before": before,
        "after": args.version,
        "changed": changed,
        "already_done": already_done,
    }


def _same(record: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(str(record.get(key)) == str(value) for key, value in wanted.items())


def _at(version: str) -> str:
    return f"version {version}" if version else "no version (the alias does not exist)"


def _aliased(model: RegisteredModel, alias: str) -> str:
    """The version `alias` points at; a StepFailed lists the model's aliases if it has none such."""
    if alias in model.aliases:
        return model.aliases[alias]
    known = ", ".join(f"{a} -> {v}" for a, v in sorted(model.aliases.items())) or "none"
    raise StepFailed(
        f"model {model.name!r} has no alias {alias!r}; its aliases: {known}"
        " (mlflow.set_alias makes a new one with `create: true`)"
    )


def _previous(versions: list[ModelVersion], of: str) -> str:
    """The newest READY version older than version `of` ("" when there is none)."""
    from integrations.mlflow.rest import version_number

    older = [
        v for v in versions if v.status == READY and version_number(v.version) < version_number(of)
    ]
    return older[0].version if older else ""


def _described(version: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    return {**version.model_dump(), "aliases": aliases}
