"""The `model` collector: a deployed model's file, metrics, recent predictions, fairness and drift.

When an alert says a model is failing or biased, the snapshot keeps the evidence: which model file
was live (hash), what its metrics said, a sample of its latest predictions, its accuracy where
labels exist, per-group rates with the fairness gaps between them, and how far its inputs and
scores drifted from a reference sample. Each of these parts is collected or fails on its own; the
document says which, and the numbers are also the snapshot step's outputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from flows.errors import StepFailed
from integrations.forensics.collectors import drift
from integrations.forensics.collectors.base import SPEC_CONFIG, Collected, Kit, Missed, Pieces
from integrations.forensics.collectors.fairness import Reading, score
from integrations.forensics.collectors.labels import LabelType, NotALabel, as_number
from integrations.forensics.collectors.samples import (
    Columns,
    latest_rows,
    salted,
    shown_url,
    url_rows,
)

Scalar = str | int | float | bool

PARTS = ("artifact", "metrics_file", "metrics_url", "predictions", "drift")
"""What the collector gathers, each collected, failed or not configured on its own."""

_OPTIONAL = (
    "artifact_path",
    "metrics_url",
    "metrics_file",
    "predictions_file",
    "score_field",
    "threshold",
    "label_type",
    "group_field",
    "reference_file",
    "reference_url",
)


class ModelSpec(BaseModel):
    """Snapshot a deployed model: file hash, metrics, recent predictions, fairness and drift."""

    model_config = SPEC_CONFIG

    type: Literal["model"] = Field(description="Collector kind: `model`.")
    name: str = Field(
        default="model",
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="Names this model in the step's outputs: `model` is "
        "`steps.<id>.model`; every model collector is `steps.<id>.models.<name>`.",
    )
    artifact_path: str | None = Field(
        default=None, description="The model file; its sha256, size and mtime are recorded."
    )
    metrics_url: str | None = Field(
        default=None, pattern=r"^https?://\S+$", description="URL answering the model's metrics."
    )
    metrics_file: str | None = Field(default=None, description="JSON file of the model's metrics.")
    predictions_file: str | None = Field(
        default=None,
        description="JSON lines, one prediction each (prediction, optional label, group, "
        "score, features); the file's last `sample` lines are used.",
    )
    prediction_field: str = Field(
        default="prediction", min_length=1, description="The column holding the predicted class."
    )
    label_field: str = Field(
        default="label", min_length=1, description="The column holding the true label."
    )
    score_field: str | None = Field(
        default=None,
        description="The column holding the model's score (probability) when it is not "
        "`prediction_field`; turned into a class with `threshold`, and checked for drift.",
    )
    threshold: float | None = Field(
        default=None,
        description="A score at or above it is a positive prediction; unset: predictions "
        "are classes.",
    )
    label_type: LabelType | None = Field(
        default=None,
        description="The type labels, predicted classes and `positive` are compared as: "
        "`int`, `float`, `bool` or `str`; unset: the first label's JSON type (reported).",
    )
    positive: Scalar = Field(
        default=1, description="The label counted as positive, read as `label_type`."
    )
    group_field: str | None = Field(
        default=None, description="The column naming each prediction's group, e.g. `region`."
    )
    sample: int = Field(default=1000, gt=0, le=1_000_000, description="Latest predictions used.")
    features: list[str] = Field(
        default_factory=list,
        description="Numeric columns whose drift against the reference is measured.",
    )
    reference_file: str | None = Field(
        default=None,
        description="JSON lines of reference rows (the same columns) that drift is measured "
        "against; the last `reference_sample` lines are used.",
    )
    reference_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="URL answering the reference rows as JSON lines, instead of a file.",
    )
    reference_sample: int = Field(
        default=10_000, gt=0, le=1_000_000, description="Latest reference rows used."
    )
    keep_columns: list[str] = Field(
        default_factory=list,
        description="Columns kept in the stored sample besides those the metrics read.",
    )
    hash_columns: list[str] = Field(
        default_factory=list,
        description="Columns kept in the stored sample as salted sha256 (salt: the incident id).",
    )
    registry: dict[str, Any] = Field(
        default_factory=dict, description="Model registry metadata to keep (name, version, ...)."
    )
    timeout_s: float = Field(
        default=10, gt=0, le=300, description="Seconds each request (metrics, reference) may take."
    )

    @field_validator(*_OPTIONAL, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # A templated option whose input was left empty renders to "": not configured.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _columns_agree(self) -> ModelSpec:
        if self.reference_file and self.reference_url:
            raise ValueError("give reference_file or reference_url, not both")
        read = {self.prediction_field, self.label_field, *self.features}
        if self.score_field:
            read.add(self.score_field)
        if hashed := sorted(read & set(self.hash_columns)):
            raise ValueError(
                f"hash_columns {hashed} are read by the metrics and cannot be hashed; "
                "hash only columns the metrics do not read (the group_field may be hashed)"
            )
        if both := sorted(set(self.keep_columns) & set(self.hash_columns)):
            raise ValueError(f"columns {both} are in keep_columns and hash_columns: choose one")
        return self

    @property
    def reading(self) -> Reading:
        """How the predictions' classes, labels and groups are read."""
        return Reading(
            prediction=self.prediction_field,
            label=self.label_field,
            score=self.score_field,
            threshold=self.threshold,
            group=self.group_field,
            label_type=self.label_type,
            positive=self.positive,
        )


_FAILURES = (StepFailed, OSError, ValueError)
"""What a part may fail with: unreadable files and answers, values the metrics cannot read."""


class _Parts:
    """Each part's status for the document and the outputs, and the misses to report."""

    def __init__(self, collector: str) -> None:
        self.collector = collector
        self.status: dict[str, dict[str, str]] = {p: {"status": "not configured"} for p in PARTS}
        self.missed: list[Missed] = []

    def collected(self, part: str) -> None:
        self.status[part] = {"status": "collected"}

    def failed(self, part: str, error: str) -> None:
        self.status[part] = {"status": "failed", "error": error}
        self.missed.append(Missed(f"{self.collector}.{part}", error))

    def attempt(
        self, part: str, where: str, fetch: Callable[[], Any], into: dict[str, Any], key: str
    ) -> None:
        """Put `fetch()`'s value in `into[key]` with `part` collected, or fail `part`."""
        try:
            into[key] = fetch()
        except _FAILURES as err:
            self.failed(part, _reason(where, err))
        else:
            self.collected(part)

    def misses(self) -> Iterator[Missed]:
        """The misses not yet reported."""
        while self.missed:
            yield self.missed.pop(0)

    @property
    def configured(self) -> bool:
        return any(s["status"] != "not configured" for s in self.status.values())

    @property
    def any_collected(self) -> bool:
        return any(s["status"] == "collected" for s in self.status.values())


def collect(spec: ModelSpec, kit: Kit) -> Pieces:
    """Gather each configured part; store one JSON document saying what each part found.

    A part that fails is reported as missed and the others still run; nothing is stored only
    when every configured part failed.
    """
    parts = _Parts(spec.name)
    document: dict[str, Any] = {"name": spec.name, "registry": spec.registry}
    if spec.artifact_path:
        path = spec.artifact_path
        parts.attempt("artifact", path, lambda: _model_file(Path(path)), document, "artifact")
        yield from parts.misses()
    if spec.metrics_file:
        path = spec.metrics_file
        parts.attempt("metrics_file", path, lambda: _json_file(Path(path)), document, "metrics")
        yield from parts.misses()
    if spec.metrics_url:
        url = spec.metrics_url
        parts.attempt(
            "metrics_url",
            shown_url(url),
            lambda: _json_url(url, kit.time_left(spec.timeout_s)),
            document,
            "metrics_from_url",
        )
        yield from parts.misses()
    rows = _predictions(spec, kit, document, parts) if spec.predictions_file else None
    yield from parts.misses()
    if spec.reference_file or spec.reference_url:
        where = spec.reference_file or shown_url(spec.reference_url or "")
        parts.attempt("drift", where, lambda: _drift(spec, kit, rows), document, "drift")
        yield from parts.misses()
    document["parts"] = parts.status
    if parts.configured and not parts.any_collected:
        return
    summary = _summary(document, parts)
    yield Collected(f"{spec.name}.json", kit.put_json(document), {"summary": summary})


def _predictions(
    spec: ModelSpec, kit: Kit, document: dict[str, Any], parts: _Parts
) -> list[dict[str, Any]] | None:
    """Read the latest predictions into the document and score them; the rows read, or None."""
    path = Path(spec.predictions_file or "")
    read = [spec.prediction_field, spec.label_field, spec.score_field, spec.group_field]
    kept = [c for c in (*read, *spec.features, *spec.keep_columns) if c]
    columns = Columns(kept, spec.hash_columns, kit.incident)
    try:
        rows, unparsed = latest_rows(path, spec.sample, columns.project)
    except _FAILURES as err:
        parts.failed("predictions", _reason(str(path), err))
        return None
    document["predictions"] = {
        "file": str(path.resolve()),
        "sample_limit": spec.sample,
        "sample_size": len(rows),
        "unparsed_lines": unparsed,
        "columns": columns.described(),
        "sample": rows,
    }

    def name_group(name: str) -> str:
        # A group named by personal data (an e-mail) would be redacted into one marker and
        # merged with the others: it is named by its salted hash instead.
        return name if kit.redact(name) == name else "redacted-" + salted(kit.incident, name)[:16]

    try:
        document["scores"] = score(rows, spec.reading, name_group)
        parts.collected("predictions")
    except NotALabel as err:
        parts.failed("predictions", f"{path}: {err}")
    return rows


def _drift(spec: ModelSpec, kit: Kit, rows: list[dict[str, Any]] | None) -> dict[str, Any]:
    """PSI and KS of the score and each feature, current sample against the reference."""
    if not spec.predictions_file:
        raise StepFailed("drift needs predictions_file: there is nothing to compare it with")
    if rows is None:
        raise StepFailed("the predictions could not be read: there is nothing to compare it with")
    columns = [spec.reading.score_column, *spec.features]

    def project(row: dict[str, Any]) -> dict[str, Any]:
        return {c: row[c] for c in columns if c in row}

    if spec.reference_file:
        path = Path(spec.reference_file)
        reference, unparsed = latest_rows(path, spec.reference_sample, project)
        stat = path.stat()
        source: dict[str, Any] = {"file": str(path.resolve()), "size": stat.st_size}
    else:
        url = spec.reference_url or ""
        limit = kit.time_left(spec.timeout_s)
        reference, unparsed = url_rows(url, spec.reference_sample, project, limit)
        source = {"url": shown_url(url)}
    return {
        "reference": source
        | {
            "sample_limit": spec.reference_sample,
            "rows": len(reference),
            "unparsed_lines": unparsed,
        },
        "score": _column_drift(spec.reading.score_column, reference, rows),
        "features": {f: _column_drift(f, reference, rows) for f in spec.features},
    }


def _column_drift(
    column: str, reference: list[dict[str, Any]], current: list[dict[str, Any]]
) -> dict[str, Any]:
    ref, ref_unreadable = _numbers(row.get(column) for row in reference)
    cur, cur_unreadable = _numbers(row.get(column) for row in current)
    return {
        "column": column,
        **drift.compare(ref, cur),
        "unreadable": cur_unreadable,
        "reference_unreadable": ref_unreadable,
    }


def _numbers(values: Iterable[Any]) -> tuple[list[float], int]:
    """The numbers among the values (numeric text too), and how many others were not missing."""
    numbers: list[float] = []
    unreadable = 0
    for value in values:
        if value is None:
            continue
        try:
            numbers.append(as_number(value))
        except NotALabel:
            unreadable += 1
    return numbers, unreadable


_SCORES = (
    "label_type",
    "label_type_from",
    "positive",
    "threshold",
    "rows",
    "count",
    "labelled",
    "positive_rate",
    "accuracy",
    "true_positive_rate",
    "false_positive_rate",
    "missing_predictions",
    "unreadable_predictions",
    "unlabelled",
    "unreadable_labels",
    "missing_group",
    "fairness",
)


def _summary(document: dict[str, Any], parts: _Parts) -> dict[str, Any]:
    """What the step outputs for this model: every part's status and the numbers, no rows.

    Its keys are always there; a number a failed or unconfigured part would give is None.
    """
    scores = document.get("scores", {})
    drifted = document.get("drift")
    artifact = document.get("artifact")
    return {
        "name": document["name"],
        "parts": {part: state["status"] for part, state in parts.status.items()},
        "artifact_sha256": artifact["sha256"] if artifact else None,
        "sample_size": document.get("predictions", {}).get("sample_size"),
        **{key: scores.get(key) for key in _SCORES},
        "drift": {"score": drifted["score"], "features": drifted["features"]} if drifted else None,
    }


def _model_file(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as model:
        while chunk := model.read(1024 * 1024):
            digest.update(chunk)
    stat = path.stat()
    return {
        "path": str(path.resolve()),
        "sha256": digest.hexdigest(),
        "size": stat.st_size,
        "mtime": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
    }


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise StepFailed(f"not JSON: {err}") from err


def _json_url(url: str, timeout_s: float) -> Any:
    import httpx  # loaded on first use: the catalog must stay cheap to import

    if timeout_s <= 0:  # httpx reads a timeout of 0 as "do not wait at all"
        raise StepFailed("not fetched: the step's timeout_s had run out")
    try:
        response = httpx.get(url, timeout=timeout_s)
        return {"status": response.status_code, "body": response.json()}
    except ValueError as err:
        raise StepFailed(f"the answer is not JSON: {err}") from err
    except httpx.HTTPError as err:
        raise StepFailed(f"GET failed: {err}") from err


def _reason(where: str, err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"{where}: {err.strerror}"
    return f"{where}: {err}"
