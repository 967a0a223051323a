"""The `model` collector: a deployed model's file, metrics and recent predictions, with fairness.

When an alert says a model is failing or biased, the snapshot keeps the evidence: which model file
was live (hash), what its metrics said, a sample of its latest predictions, its accuracy where
labels exist, and per-group positive rates with the demographic-parity gap between them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from flows.errors import StepFailed
from integrations.forensics.collectors.base import SPEC_CONFIG, Collected, Kit, Pieces
from integrations.forensics.collectors.files import lines_backwards

Scalar = str | int | float | bool


class ModelSpec(BaseModel):
    """Snapshot a deployed model: file hash, metrics, recent predictions, accuracy, parity."""

    model_config = SPEC_CONFIG

    type: Literal["model"] = Field(description="Collector kind: `model`.")
    artifact_path: str | None = Field(
        default=None, description="The model file; its sha256, size and mtime are recorded."
    )
    metrics_url: str | None = Field(
        default=None, pattern=r"^https?://\S+$", description="URL answering the model's metrics."
    )
    metrics_file: str | None = Field(default=None, description="JSON file of the model's metrics.")
    predictions_file: str | None = Field(
        default=None,
        description="JSON lines, one prediction each: `prediction`, optional `label`, optional "
        "group attribute; the file's last `sample` lines are used.",
    )
    group_field: str | None = Field(
        default=None, description="Field naming each prediction's group, e.g. `region`."
    )
    positive: Scalar = Field(
        default=1, description="The prediction value counted as positive (1 also matches true)."
    )
    sample: int = Field(default=1000, gt=0, le=1_000_000, description="Latest predictions used.")
    registry: dict[str, Any] = Field(
        default_factory=dict, description="Model registry metadata to keep (name, version, ...)."
    )
    timeout_s: float = Field(
        default=10, gt=0, le=300, description="Seconds the metrics request may take."
    )


def collect(spec: ModelSpec, kit: Kit) -> Pieces:
    """Store one JSON document of everything the spec points at."""
    document: dict[str, Any] = {"registry": spec.registry}
    if spec.artifact_path:
        document["artifact"] = _model_file(Path(spec.artifact_path))
    if spec.metrics_file:
        document["metrics"] = _json_file(Path(spec.metrics_file))
    if spec.metrics_url:
        document["metrics_from_url"] = _json_url(spec.metrics_url, kit.time_left(spec.timeout_s))
    if spec.predictions_file:
        rows, unparsed = _latest_rows(Path(spec.predictions_file), spec.sample)
        document["predictions"] = {
            "sample": rows,
            "unparsed_lines": unparsed,
            **score(rows, spec.positive, spec.group_field),
        }
    yield Collected("model.json", kit.put_json(document))


def score(rows: list[dict[str, Any]], positive: Scalar, group_field: str | None) -> dict[str, Any]:
    """Count, accuracy over labelled rows, and per-group positive rates with the parity gap."""
    labelled = [r for r in rows if r.get("label") is not None]
    correct = sum(r.get("prediction") == r["label"] for r in labelled)
    result: dict[str, Any] = {
        "count": len(rows),
        "labelled": len(labelled),
        "accuracy": correct / len(labelled) if labelled else None,
        "positive_rate": _rate(rows, positive),
    }
    if group_field:
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if row.get(group_field) is not None:
                groups.setdefault(str(row[group_field]), []).append(row)
        rates = {name: _rate(members, positive) for name, members in sorted(groups.items())}
        result["groups"] = {
            name: {"count": len(groups[name]), "positive_rate": rate}
            for name, rate in rates.items()
        }
        values = [rate for rate in rates.values() if rate is not None]
        result["parity_gap"] = max(values) - min(values) if len(values) > 1 else None
    return result


def _rate(rows: list[dict[str, Any]], positive: Scalar) -> float | None:
    return sum(r.get("prediction") == positive for r in rows) / len(rows) if rows else None


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
        raise StepFailed(f"{path} is not JSON: {err}") from err


def _json_url(url: str, timeout_s: float) -> Any:
    import httpx  # loaded on first use: the catalog must stay cheap to import

    if timeout_s <= 0:  # httpx reads a timeout of 0 as "do not wait at all"
        raise StepFailed(f"metrics from {url} not fetched: the step's timeout_s had run out")
    try:
        response = httpx.get(url, timeout=timeout_s)
        return {"status": response.status_code, "body": response.json()}
    except ValueError as err:
        raise StepFailed(f"metrics from {url} are not JSON: {err}") from err
    except httpx.HTTPError as err:
        raise StepFailed(f"metrics from {url} failed: {err}") from err


def _latest_rows(path: Path, sample: int) -> tuple[list[dict[str, Any]], int]:
    """The last `sample` JSON objects of a JSON-lines file, oldest first, and lines skipped."""
    rows: list[dict[str, Any]] = []
    unparsed = 0
    with open(path, "rb") as lines:
        for line in lines_backwards(lines):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                unparsed += 1
                continue
            if not isinstance(row, dict):
                unparsed += 1
                continue
            rows.append(row)
            if len(rows) == sample:
                break
    rows.reverse()
    return rows, unparsed
