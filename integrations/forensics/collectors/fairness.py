"""How a model treats the people it scores: accuracy, and per group the rates fairness compares.

The definitions are fairlearn's: a group's selection (positive) rate is the share of its rows
predicted positive; the demographic-parity difference is the largest group rate minus the
smallest, the ratio the smallest over the largest; the equalized-odds difference is the larger
of the true-positive-rate and false-positive-rate differences between groups. Where fairlearn
counts a rate with nothing to divide by as 0, these leave it out (None) and say so by count.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from integrations.forensics.collectors.labels import (
    Label,
    LabelType,
    NotALabel,
    as_number,
    infer_label_type,
    read_label,
)

EXAMPLES = 5
"""Values kept as examples of each kind of unreadable value."""


@dataclass(frozen=True)
class Reading:
    """Where each prediction's class, label and group are, and how to read them."""

    prediction: str = "prediction"
    label: str = "label"
    score: str | None = None
    """The probability column, when it is not `prediction`; read only with a `threshold`."""
    threshold: float | None = None
    """A score at or above it is a positive prediction; None: predictions are classes."""
    group: str | None = None
    label_type: LabelType | None = None
    positive: Any = 1

    @property
    def score_column(self) -> str:
        """The column holding the model's score: `score`, else `prediction`."""
        return self.score or self.prediction


@dataclass
class _Outcome:
    """One scored row: whether it was predicted positive, and what its label says."""

    predicted_positive: bool
    label_positive: bool | None
    correct: bool | None
    group: Any = None


@dataclass
class _Counts:
    """The rows that could not be used in full, by why."""

    missing_predictions: int = 0
    unreadable_predictions: int = 0
    unlabelled: int = 0
    unreadable_labels: int = 0
    missing_group: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def unreadable(self, kind: str, error: NotALabel) -> None:
        if kind == "label":
            self.unreadable_labels += 1
        else:
            self.unreadable_predictions += 1
        seen = self.examples.setdefault(kind, [])
        if len(seen) < EXAMPLES and str(error) not in seen:
            seen.append(str(error))


def score(
    rows: Sequence[dict[str, Any]],
    reading: Reading,
    name_group: Callable[[str], str] = lambda name: name,
) -> dict[str, Any]:
    """Accuracy, positive rate, TPR and FPR over the rows; with a group field, fairness too.

    `name_group` may rename a group (to hide personal data in its name). Raises NotALabel when
    `positive` cannot be read as the label type.
    """
    label_type, source = _label_type(rows, reading)
    try:
        positive = read_label(reading.positive, label_type)
    except NotALabel as err:
        raise NotALabel(
            f"positive {err} (label_type {label_type}, {_from(source)}): set `positive` to "
            f"a value of that type, or declare the label_type the model logs"
        ) from None
    counts = _Counts()
    outcomes = [
        outcome
        for row in rows
        if (outcome := _outcome(row, reading, label_type, positive, counts)) is not None
    ]
    result: dict[str, Any] = {
        "label_type": label_type,
        "label_type_from": source,
        "positive": positive,
        "threshold": reading.threshold,
        "rows": len(rows),
        **_rates(outcomes),
        "missing_predictions": counts.missing_predictions,
        "unreadable_predictions": counts.unreadable_predictions,
        "unlabelled": counts.unlabelled,
        "unreadable_labels": counts.unreadable_labels,
        "unreadable_examples": counts.examples,
    }
    if reading.group is not None:
        grouped = [o for o in outcomes if o.group is not None]
        result["missing_group"] = len(outcomes) - len(grouped)
        result["fairness"] = fairness(grouped, name_group)
    else:
        result["missing_group"] = None
        result["fairness"] = None
    return result


def fairness(outcomes: Iterable[_Outcome], name_group: Callable[[str], str]) -> dict[str, Any]:
    """Per group rates, and the parity and equalized-odds differences between the groups."""
    outcomes = list(outcomes)
    keys = [json.dumps(o.group, sort_keys=True) for o in outcomes]
    by_key = dict(zip(keys, (o.group for o in outcomes), strict=True))
    names = {key: name_group(name) for key, name in group_names(by_key).items()}
    members: dict[str, list[_Outcome]] = {}
    values: dict[str, Any] = {}
    for key, outcome in zip(keys, outcomes, strict=True):
        name = names[key]
        members.setdefault(name, []).append(outcome)
        values[name] = outcome.group
    groups = {name: {"value": values[name], **_rates(members[name])} for name in sorted(members)}
    rates = [g["positive_rate"] for g in groups.values()]
    tpr = [g["true_positive_rate"] for g in groups.values() if g["true_positive_rate"] is not None]
    fpr = [
        g["false_positive_rate"] for g in groups.values() if g["false_positive_rate"] is not None
    ]
    tpr_difference = _spread(tpr)
    fpr_difference = _spread(fpr)
    defined = [d for d in (tpr_difference, fpr_difference) if d is not None]
    return {
        "groups": groups,
        "parity_gap": _spread(rates),
        "parity_ratio": min(rates) / max(rates) if len(rates) > 1 and max(rates) > 0 else None,
        "true_positive_rate_difference": tpr_difference,
        "false_positive_rate_difference": fpr_difference,
        "equalized_odds_difference": max(defined) if defined else None,
    }


def group_names(values: dict[str, Any]) -> dict[str, str]:
    """Each group value's name, keyed by its JSON text.

    A group is named by its text (`north`, `1`, `true`); a string that reads like another
    group's number or boolean (`"1"` beside `1`) keeps its quotes, so the two stay two groups.
    """
    plain = {key: value if isinstance(value, str) else key for key, value in values.items()}
    taken = {name for key, name in plain.items() if not isinstance(values[key], str)}
    return {
        key: key if isinstance(values[key], str) and name in taken else name
        for key, name in plain.items()
    }


def _label_type(rows: Sequence[dict[str, Any]], reading: Reading) -> tuple[LabelType, str]:
    if reading.label_type is not None:
        return reading.label_type, "declared"
    labels = (row.get(reading.label) for row in rows)
    # Scores are not classes: with a threshold only the labels and `positive` tell the type.
    classes = () if reading.threshold is not None else (row.get(reading.prediction) for row in rows)
    return infer_label_type(labels, classes, reading.positive)


def _from(source: str) -> str:
    return "declared" if source == "declared" else f"inferred from the first {source}"


def _outcome(
    row: dict[str, Any],
    reading: Reading,
    label_type: LabelType,
    positive: Label,
    counts: _Counts,
) -> _Outcome | None:
    """The row as scored, or None when it has no usable prediction (counted)."""
    predicted: Label | None = None
    if reading.threshold is not None:
        raw = row.get(reading.score_column)
        if raw is None:
            counts.missing_predictions += 1
            return None
        try:
            predicted_positive = as_number(raw) >= reading.threshold
        except NotALabel as err:
            counts.unreadable("score", err)
            return None
    else:
        raw = row.get(reading.prediction)
        if raw is None:
            counts.missing_predictions += 1
            return None
        try:
            predicted = read_label(raw, label_type)
        except NotALabel as err:
            counts.unreadable("prediction", err)
            return None
        predicted_positive = predicted == positive
    label: Label | None = None
    raw_label = row.get(reading.label)
    if raw_label is None:
        counts.unlabelled += 1
    else:
        try:
            label = read_label(raw_label, label_type)
        except NotALabel as err:
            counts.unreadable("label", err)
    label_positive = None if label is None else label == positive
    if label is None:
        correct = None
    elif predicted is None:
        correct = predicted_positive == label_positive
    else:
        correct = predicted == label
    group = row.get(reading.group) if reading.group is not None else None
    return _Outcome(predicted_positive, label_positive, correct, group)


def _rates(outcomes: Sequence[_Outcome]) -> dict[str, Any]:
    """Rows scored (count), positive rate, accuracy, true and false positive rates; a rate
    with nothing to divide by is None."""
    labelled = [o for o in outcomes if o.correct is not None]
    positives = [o for o in labelled if o.label_positive]
    negatives = [o for o in labelled if not o.label_positive]
    return {
        "count": len(outcomes),
        "labelled": len(labelled),
        "positive_rate": _share(o.predicted_positive for o in outcomes),
        "accuracy": _share(bool(o.correct) for o in labelled),
        "true_positive_rate": _share(o.predicted_positive for o in positives),
        "false_positive_rate": _share(o.predicted_positive for o in negatives),
    }


def _share(flags: Iterable[bool]) -> float | None:
    total = hits = 0
    for flag in flags:
        total += 1
        hits += flag
    return hits / total if total else None


def _spread(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) - min(known) if len(known) > 1 else None
