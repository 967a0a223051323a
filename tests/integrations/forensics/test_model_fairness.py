"""The model collector's accuracy and fairness numbers against fairlearn's, on generated logs.

Every case stores the predictions the way a serving system might log them (integers, strings,
probabilities, a templated `positive`) and compares what the collector stored with fairlearn
and scikit-learn computed on the same rows as integers. Both add up the same counts in floating
point, so they must agree to 1e-12.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from flows.evidence.redact import Redactor
from flows.runbook.templates import render_value
from integrations.forensics.actions import COLLECTORS, SnapshotArgs
from integrations.forensics.collectors.base import Collected, Kit
from integrations.forensics.store import ArtifactStore
from tests.integrations.forensics.predictions import biased_rows, write_lines

TOLERANCE = 1e-12
ROWS = biased_rows(3000, seed=15)


def collect_scores(tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the model collector on `spec` and return the `scores` of its stored document."""
    [model] = SnapshotArgs.model_validate({"collectors": [spec]}).collectors
    redactor = Redactor()
    kit = Kit(ArtifactStore(tmp_path / "evidence"), lambda text: redactor.redact(text)[0])
    [piece] = list(COLLECTORS["model"](model, kit))
    assert isinstance(piece, Collected)
    return dict(json.loads(piece.artifact.path.read_bytes())["scores"])


def assert_matches_fairlearn(scores: dict[str, Any], predicted: list[int]) -> None:
    """The stored numbers equal fairlearn's and scikit-learn's for these integer predictions."""
    truth = [row["label"] for row in ROWS]
    groups = [row["region"] for row in ROWS]
    fairness = scores["fairness"]
    assert scores["accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=TOLERANCE)
    expected = {
        "parity_gap": demographic_parity_difference(truth, predicted, sensitive_features=groups),
        "parity_ratio": demographic_parity_ratio(truth, predicted, sensitive_features=groups),
        "equalized_odds_difference": equalized_odds_difference(
            truth, predicted, sensitive_features=groups
        ),
    }
    for name, value in expected.items():
        assert fairness[name] == pytest.approx(value, abs=TOLERANCE), name
    frame = MetricFrame(
        metrics={
            "positive_rate": selection_rate,
            "accuracy": accuracy_score,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
        },
        y_true=truth,
        y_pred=predicted,
        sensitive_features=groups,
    )
    by_group = frame.by_group.to_dict(orient="index")
    assert set(fairness["groups"]) == set(by_group)
    for group, metrics in by_group.items():
        for name, value in metrics.items():
            assert fairness["groups"][group][name] == pytest.approx(value, abs=TOLERANCE)
    # A model this biased must show it: a gap of zero would pass any comparison above.
    assert fairness["parity_gap"] > 0.4


def test_integer_predictions_match_fairlearn(tmp_path: Path) -> None:
    """Integer predictions and labels give fairlearn's parity, ratio, odds and per-group rates."""
    path = write_lines(tmp_path / "p.jsonl", ROWS)
    spec = {"type": "model", "predictions_file": str(path), "group_field": "region"}
    scores = collect_scores(tmp_path, {**spec, "sample": len(ROWS)})
    assert (scores["label_type"], scores["label_type_from"]) == ("int", "label")
    assert_matches_fairlearn(scores, [row["prediction"] for row in ROWS])


def test_predictions_logged_as_strings_match_fairlearn(tmp_path: Path) -> None:
    """Predictions logged as "1"/"0" against integer labels are read as the labels' type."""
    logged = [row | {"prediction": str(row["prediction"])} for row in ROWS]
    path = write_lines(tmp_path / "p.jsonl", logged)
    spec = {"type": "model", "predictions_file": str(path), "group_field": "region"}
    scores = collect_scores(tmp_path, {**spec, "sample": len(ROWS)})
    assert scores["unreadable_predictions"] == 0
    assert_matches_fairlearn(scores, [row["prediction"] for row in ROWS])


def test_probabilities_with_a_threshold_match_fairlearn(tmp_path: Path) -> None:
    """Probabilities become classes at the threshold; fairlearn sees `score >= 0.5` as 1."""
    logged = [{k: v for k, v in row.items() if k != "prediction"} for row in ROWS]
    path = write_lines(tmp_path / "p.jsonl", logged)
    spec = {
        "type": "model",
        "predictions_file": str(path),
        "group_field": "region",
        "score_field": "score",
        "threshold": 0.5,
        "sample": len(ROWS),
    }
    scores = collect_scores(tmp_path, spec)
    assert_matches_fairlearn(scores, [int(row["score"] >= 0.5) for row in ROWS])


def test_probabilities_in_the_prediction_column_need_a_threshold(tmp_path: Path) -> None:
    """Probabilities logged as the prediction are classes only with `threshold`: without one
    they are counted as unreadable, never compared with the labels."""
    logged = [row | {"prediction": row["score"]} for row in ROWS]
    path = write_lines(tmp_path / "p.jsonl", logged)
    spec = {"type": "model", "predictions_file": str(path), "group_field": "region"}
    unreadable = collect_scores(tmp_path, {**spec, "sample": len(ROWS)})
    whole = sum(float(row["score"]).is_integer() for row in ROWS)
    assert unreadable["unreadable_predictions"] == len(ROWS) - whole
    assert unreadable["count"] == whole
    scores = collect_scores(tmp_path, {**spec, "sample": len(ROWS), "threshold": 0.5})
    assert_matches_fairlearn(scores, [int(row["score"] >= 0.5) for row in ROWS])


def test_templated_positive_matches_fairlearn(tmp_path: Path) -> None:
    """`positive: "{{ inputs.positive }}"` renders to the text "1" and still counts integer 1s,
    with label_type inferred or given as a template too."""
    path = write_lines(tmp_path / "p.jsonl", ROWS)
    written = {
        "type": "model",
        "predictions_file": str(path),
        "group_field": "region",
        "positive": "{{ inputs.positive }}",
        "sample": "{{ inputs.sample }}",
    }
    context = {"inputs": {"positive": 1, "sample": len(ROWS)}}
    rendered = render_value(written, context)
    assert rendered["positive"] == "1"
    assert_matches_fairlearn(collect_scores(tmp_path, rendered), [r["prediction"] for r in ROWS])
    typed = render_value(
        {**written, "label_type": "{{ inputs.label_type }}"},
        {"inputs": {**context["inputs"], "label_type": "int"}},
    )
    scores = collect_scores(tmp_path, typed)
    assert (scores["label_type"], scores["label_type_from"]) == ("int", "declared")
    assert_matches_fairlearn(scores, [r["prediction"] for r in ROWS])


def test_string_labels_match_fairlearn(tmp_path: Path) -> None:
    """Labels and predictions logged as words compare as text with a word as `positive`."""
    words = {0: "legit", 1: "fraud"}
    logged = [
        row | {"label": words[row["label"]], "prediction": words[row["prediction"]]} for row in ROWS
    ]
    path = write_lines(tmp_path / "p.jsonl", logged)
    spec = {
        "type": "model",
        "predictions_file": str(path),
        "group_field": "region",
        "positive": "fraud",
        "sample": len(ROWS),
    }
    scores = collect_scores(tmp_path, spec)
    assert scores["label_type"] == "str" and scores["positive"] == "fraud"
    assert_matches_fairlearn(scores, [row["prediction"] for row in ROWS])
