"""The model collector on real files and a real HTTP server: what it counts, what each part does
alone, and what its stored sample keeps."""

from __future__ import annotations

import hashlib
import json
import socket
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flows.evidence.personal import PersonalDataRedactor
from flows.evidence.redact import Redactor
from integrations.forensics.actions import COLLECTORS, SnapshotArgs
from integrations.forensics.collectors.base import Collected, Kit, Missed, Piece
from integrations.forensics.store import ArtifactStore
from tests.integrations.forensics.predictions import biased_rows, write_lines

INCIDENT = "INC-15"


def gather(tmp_path: Path, spec: dict[str, Any]) -> list[Piece]:
    """Run one model collector spec for incident INC-15, redacting secrets and personal data."""
    [model] = SnapshotArgs.model_validate({"collectors": [spec]}).collectors
    redactor = Redactor(personal=PersonalDataRedactor())
    kit = Kit(
        ArtifactStore(tmp_path / "evidence"),
        lambda text: redactor.redact(text, personal=True)[0],
        incident=INCIDENT,
    )
    return list(COLLECTORS["model"](model, kit))


def stored(pieces: list[Piece]) -> dict[str, Any]:
    """The one stored document among the pieces."""
    [piece] = [p for p in pieces if isinstance(p, Collected)]
    return dict(json.loads(piece.artifact.path.read_bytes()))


def misses(pieces: list[Piece]) -> dict[str, str]:
    """What each missed part's failure says, by part name."""
    return {p.name: p.error for p in pieces if isinstance(p, Missed)}


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_accuracy_and_parity_gap_match_hand_computed_values(tmp_path: Path) -> None:
    """Accuracy over labelled rows and the demographic-parity gap and ratio of a small log."""
    rows = [
        {"prediction": 1, "label": 1, "region": "north"},
        {"prediction": 1, "label": 0, "region": "north"},
        {"prediction": 1, "label": 1, "region": "north"},
        {"prediction": 0, "label": 0, "region": "north"},
        {"prediction": 0, "label": 1, "region": "south"},
        {"prediction": 1, "label": 1, "region": "south"},
        {"prediction": 0, "label": 0, "region": "south"},
        {"prediction": 0, "region": "south"},
    ]
    path = write_lines(tmp_path / "p.jsonl", rows)
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    spec = {
        "type": "model",
        "artifact_path": str(model),
        "predictions_file": str(path),
        "group_field": "region",
        "registry": {"name": "credit", "version": "7"},
    }
    document = stored(gather(tmp_path, spec))
    scores = document["scores"]
    assert (scores["count"], scores["labelled"], scores["unlabelled"]) == (8, 7, 1)
    assert scores["accuracy"] == pytest.approx(5 / 7)
    fairness = scores["fairness"]
    assert fairness["groups"]["north"]["positive_rate"] == 0.75
    assert fairness["groups"]["south"]["positive_rate"] == 0.25
    assert fairness["groups"]["south"]["true_positive_rate"] == 0.5
    assert (fairness["parity_gap"], fairness["parity_ratio"]) == (0.5, 0.25 / 0.75)
    # TPR north 2/2, south 1/2; FPR north 1/2, south 0/1: the larger difference is 0.5.
    assert fairness["equalized_odds_difference"] == 0.5
    assert document["artifact"]["size"] == 7 and document["registry"]["version"] == "7"


def test_a_rate_with_nothing_to_divide_is_left_out(tmp_path: Path) -> None:
    """A group without positive labels has no true positive rate (None, not 0), and the
    differences are taken over the groups that have one."""
    rows = [
        {"prediction": 1, "label": 0, "region": "north"},
        {"prediction": 0, "label": 0, "region": "north"},
        {"prediction": 1, "label": 1, "region": "south"},
        {"prediction": 0, "label": 0, "region": "south"},
    ]
    path = write_lines(tmp_path / "p.jsonl", rows)
    spec = {"type": "model", "predictions_file": str(path), "group_field": "region"}
    fairness = stored(gather(tmp_path, spec))["scores"]["fairness"]
    assert fairness["groups"]["north"]["true_positive_rate"] is None
    assert fairness["true_positive_rate_difference"] is None
    assert fairness["false_positive_rate_difference"] == 0.5
    assert fairness["equalized_odds_difference"] == 0.5


def test_rows_without_a_group_are_counted(tmp_path: Path) -> None:
    """A prediction without the group field, or with null, counts in `missing_group` and in
    the overall rates, not in any group."""
    rows = [
        {"prediction": 1, "label": 1, "region": "north"},
        {"prediction": 0, "label": 0, "region": "south"},
        {"prediction": 1, "label": 0},
        {"prediction": 1, "label": 1, "region": None},
    ]
    path = write_lines(tmp_path / "p.jsonl", rows)
    spec = {"type": "model", "predictions_file": str(path), "group_field": "region"}
    scores = stored(gather(tmp_path, spec))["scores"]
    assert scores["missing_group"] == 2
    assert scores["count"] == 4 and scores["positive_rate"] == 0.75
    assert {name: g["count"] for name, g in scores["fairness"]["groups"].items()} == {
        "north": 1,
        "south": 1,
    }


def test_groups_of_different_json_types_stay_apart(tmp_path: Path) -> None:
    """Group 1 and group "1" are two groups, the string one named with its quotes."""
    rows = [
        {"prediction": 1, "label": 1, "tier": 1},
        {"prediction": 1, "label": 1, "tier": 1},
        {"prediction": 0, "label": 1, "tier": "1"},
        {"prediction": 1, "label": 1, "tier": "2"},
    ]
    path = write_lines(tmp_path / "p.jsonl", rows)
    spec = {"type": "model", "predictions_file": str(path), "group_field": "tier"}
    groups = stored(gather(tmp_path, spec))["scores"]["fairness"]["groups"]
    assert {name: (g["value"], g["positive_rate"]) for name, g in groups.items()} == {
        "1": (1, 1.0),
        '"1"': ("1", 0.0),
        "2": ("2", 1.0),
    }


def test_values_that_cannot_be_read_as_the_label_type_are_counted(tmp_path: Path) -> None:
    """A prediction or label that is not of the declared type is counted with an example and
    left out of what it cannot be compared in."""
    rows = [
        {"prediction": 1, "label": 1},
        {"prediction": "maybe", "label": 1},
        {"prediction": 0, "label": "n/a"},
        {"prediction": 0, "label": 0},
        {"prediction": 1},
        {"label": 1},
    ]
    path = write_lines(tmp_path / "p.jsonl", rows)
    spec = {"type": "model", "predictions_file": str(path), "label_type": "int"}
    scores = stored(gather(tmp_path, spec))["scores"]
    assert scores["unreadable_predictions"] == 1 and scores["unreadable_labels"] == 1
    assert scores["missing_predictions"] == 1 and scores["unlabelled"] == 1
    assert scores["count"] == 4 and scores["labelled"] == 2 and scores["accuracy"] == 1.0
    assert scores["positive_rate"] == 0.5
    assert scores["unreadable_examples"] == {
        "prediction": ['"maybe" is not a number'],
        "label": ['"n/a" is not a number'],
    }


def test_label_type_is_inferred_from_the_first_label_and_reported(tmp_path: Path) -> None:
    """Without label_type, float labels make the comparison numeric: 1 and 1.0 are equal."""
    rows = [{"prediction": 1, "label": 1.0}, {"prediction": "0", "label": 0.0}]
    path = write_lines(tmp_path / "p.jsonl", rows)
    scores = stored(gather(tmp_path, {"type": "model", "predictions_file": str(path)}))["scores"]
    assert (scores["label_type"], scores["label_type_from"]) == ("float", "label")
    assert scores["accuracy"] == 1.0 and scores["positive"] == 1.0


def test_a_positive_of_another_type_fails_only_the_predictions(tmp_path: Path) -> None:
    """A `positive` the label type cannot read fails the predictions part saying what to set;
    the sample and the model file are still stored."""
    path = write_lines(tmp_path / "p.jsonl", [{"prediction": 1, "label": 1}])
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    spec = {
        "type": "model",
        "predictions_file": str(path),
        "artifact_path": str(model),
        "positive": "yes",
        "label_type": "int",
    }
    pieces = gather(tmp_path, spec)
    [error] = misses(pieces).values()
    assert 'positive "yes" is not a number (label_type int, declared)' in error
    document = stored(pieces)
    assert document["parts"]["predictions"]["status"] == "failed"
    assert document["parts"]["artifact"] == {"status": "collected"}
    assert document["predictions"]["sample_size"] == 1 and "scores" not in document


def test_an_unreachable_metrics_url_loses_only_the_metrics(tmp_path: Path) -> None:
    """With the metrics server down, the model hash, the predictions and parity are still
    stored, and the document and the misses say the metrics URL failed."""
    rows = biased_rows(200, seed=3)
    path = write_lines(tmp_path / "p.jsonl", rows)
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    url = f"http://127.0.0.1:{closed_port()}/metrics"
    spec = {
        "type": "model",
        "artifact_path": str(model),
        "metrics_url": url,
        "predictions_file": str(path),
        "group_field": "region",
    }
    pieces = gather(tmp_path, spec)
    assert list(misses(pieces)) == ["model.metrics_url"]
    assert misses(pieces)["model.metrics_url"].startswith(url)
    document = stored(pieces)
    assert document["artifact"]["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert document["scores"]["fairness"]["parity_gap"] > 0
    assert {part: state["status"] for part, state in document["parts"].items()} == {
        "artifact": "collected",
        "metrics_file": "not configured",
        "metrics_url": "failed",
        "predictions": "collected",
        "drift": "not configured",
    }
    [piece] = [p for p in pieces if isinstance(p, Collected)]
    assert piece.facts["summary"]["parts"]["metrics_url"] == "failed"


def test_empty_optional_values_are_not_configured(tmp_path: Path) -> None:
    """Optional paths, URLs and fields left empty (a template over an empty input) are not
    configured: nothing fails, nothing is read from them."""
    path = write_lines(tmp_path / "p.jsonl", [{"prediction": 1, "label": 1}])
    empty = {
        key: ""
        for key in (
            "artifact_path",
            "metrics_url",
            "metrics_file",
            "score_field",
            "threshold",
            "label_type",
            "group_field",
            "reference_file",
            "reference_url",
        )
    }
    pieces = gather(tmp_path, {"type": "model", "predictions_file": str(path), **empty})
    assert misses(pieces) == {}
    document = stored(pieces)
    assert document["parts"]["predictions"] == {"status": "collected"}
    assert {s["status"] for p, s in document["parts"].items() if p != "predictions"} == {
        "not configured"
    }
    assert document["scores"]["fairness"] is None and document["scores"]["accuracy"] == 1.0


def test_nothing_is_stored_when_every_configured_part_fails(tmp_path: Path) -> None:
    """A model file and predictions that are both missing give two misses and no document."""
    spec = {
        "type": "model",
        "artifact_path": str(tmp_path / "gone.bin"),
        "predictions_file": str(tmp_path / "gone.jsonl"),
    }
    pieces = gather(tmp_path, spec)
    assert all(isinstance(p, Missed) for p in pieces)
    assert misses(pieces) == {
        "model.artifact": f"{tmp_path / 'gone.bin'}: No such file or directory",
        "model.predictions": f"{tmp_path / 'gone.jsonl'}: No such file or directory",
    }


def test_the_sample_keeps_only_the_columns_it_needs(tmp_path: Path) -> None:
    """Prediction, label, score, group, drift features and `keep_columns` are kept; `hash_columns`
    are salted with the incident id; the rest is dropped, and the sample size recorded."""
    rows = [
        {
            "prediction": 1,
            "label": 1,
            "p": 0.9,
            "region": "north",
            "age": 41,
            "model_version": "7",
            "user_id": "u-1001",
            "email": "ada@example.com",
            "address": "1 Main St",
        },
        {"prediction": 0, "label": 0, "p": 0.2, "region": "south", "user_id": None, "ip": "x"},
    ]
    path = write_lines(tmp_path / "p.jsonl", rows)
    reference = write_lines(tmp_path / "ref.jsonl", rows)
    spec = {
        "type": "model",
        "predictions_file": str(path),
        "score_field": "p",
        "group_field": "region",
        "features": ["age"],
        "reference_file": str(reference),
        "keep_columns": ["model_version"],
        "hash_columns": ["user_id"],
    }
    predictions = stored(gather(tmp_path, spec))["predictions"]
    salted = hashlib.sha256(f'{INCIDENT}:"u-1001"'.encode()).hexdigest()
    assert predictions["sample"] == [
        {
            "prediction": 1,
            "label": 1,
            "p": 0.9,
            "region": "north",
            "age": 41,
            "model_version": "7",
            "user_id": salted,
        },
        {"prediction": 0, "label": 0, "p": 0.2, "region": "south", "user_id": None},
    ]
    assert predictions["columns"]["dropped"] == ["address", "email", "ip"]
    assert predictions["columns"]["hashed"] == ["user_id"]
    assert (predictions["sample_size"], predictions["sample_limit"]) == (2, 1000)


def test_kept_columns_are_still_redacted(tmp_path: Path) -> None:
    """Personal data in a kept column is redacted in the stored sample, and a group named by it
    is named by its salted hash, so two people never merge into one redacted group."""
    rows = [
        {"prediction": 1, "label": 1, "owner": "ada@example.com", "note": "call ada@example.com"},
        {"prediction": 0, "label": 1, "owner": "bob@example.com", "note": "ok"},
    ]
    path = write_lines(tmp_path / "p.jsonl", rows)
    spec = {
        "type": "model",
        "predictions_file": str(path),
        "group_field": "owner",
        "keep_columns": ["note"],
    }
    pieces = gather(tmp_path, spec)
    [piece] = [p for p in pieces if isinstance(p, Collected)]
    text = piece.artifact.path.read_text()
    assert "example.com" not in text
    document = json.loads(text)
    assert document["predictions"]["sample"][0]["note"] == "call [REDACTED:email]"
    names = sorted(document["scores"]["fairness"]["groups"])
    ada = "redacted-" + hashlib.sha256(f'{INCIDENT}:"ada@example.com"'.encode()).hexdigest()[:16]
    assert len(names) == 2 and ada in names
    assert piece.artifact.redactions >= 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hash_columns": ["label"]}, "hash_columns ['label'] are read by the metrics"),
        ({"features": ["age"], "hash_columns": ["age"]}, "hash_columns ['age'] are read"),
        ({"keep_columns": ["x"], "hash_columns": ["x"]}, "in keep_columns and hash_columns"),
        ({"reference_file": "a", "reference_url": "http://b/"}, "not both"),
    ],
)
def test_contradictory_column_options_are_refused(options: dict[str, Any], message: str) -> None:
    """Hashing a column the metrics read, or keeping and hashing one, is refused saying so."""
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SnapshotArgs.model_validate({"collectors": [{"type": "model", **options}]})


def test_only_the_latest_predictions_are_sampled(tmp_path: Path) -> None:
    """With `sample`, only the last N predictions are scored and kept."""
    path = write_lines(tmp_path / "p.jsonl", ({"prediction": n % 2} for n in range(100)))
    spec = {"type": "model", "predictions_file": str(path), "sample": 4}
    document = stored(gather(tmp_path, spec))
    assert [r["prediction"] for r in document["predictions"]["sample"]] == [0, 1, 0, 1]
    assert document["scores"]["accuracy"] is None
    assert document["scores"]["positive_rate"] == 0.5


def test_memory_holds_the_sample_not_the_file(tmp_path: Path) -> None:
    """Scoring the last 500 of 200,000 predictions allocates far less than the file's size: the
    file is read backwards and stops at the sample."""
    path = tmp_path / "p.jsonl"
    line = json.dumps({"prediction": 1, "label": 0, "region": "north", "extra": "x" * 60}) + "\n"
    path.write_text(line * 200_000)
    spec = {"type": "model", "predictions_file": str(path), "group_field": "region", "sample": 500}
    tracemalloc.start()
    try:
        gather(tmp_path, spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert size > 20_000_000
    assert peak < 5_000_000, f"peak {peak} bytes for a {size}-byte file"
