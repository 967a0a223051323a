"""Labels, predicted classes and `positive` read as one declared type, so equal means equal.

A templated `positive` arrives as text ("1"), predictions are logged as strings or numbers by
whoever wrote the serving code, and JSON keeps `1`, `1.0`, `true` and `"1"` apart. Comparing
them as they come makes every rate silently 0; comparing them after reading each as the
declared `label_type` makes them agree, and a value that cannot be read so is counted, never
guessed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any, Literal

LabelType = Literal["int", "float", "bool", "str"]
Label = int | float | bool | str

_INTEGER = re.compile(r"^[+-]?\d+$")
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


class NotALabel(ValueError):
    """A value that cannot be read as the declared label type."""


def read_label(value: Any, label_type: LabelType) -> Label:
    """`value` read as `label_type`; raise NotALabel when it cannot be, saying why."""
    if label_type == "int":
        return _as_int(value)
    if label_type == "float":
        return float(value) if isinstance(value, bool) else as_number(value)
    if label_type == "bool":
        return _as_bool(value)
    return as_text(value)


def as_number(value: Any) -> float:
    """A finite number from a JSON number or numeric text; booleans are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise NotALabel(f"{_shown(value)} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise NotALabel(f"{_shown(value)} is not a number") from None
    if not math.isfinite(number):
        raise NotALabel(f"{_shown(value)} is not a finite number")
    return number


def as_text(value: Any) -> str:
    """Text as it is; anything else as its JSON text (`1`, `1.5`, `true`)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value.strip())
    number = as_number(value)
    if not number.is_integer():
        raise NotALabel(f"{_shown(value)} is not a whole number")
    return int(number)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise NotALabel(f"{_shown(value)} is not true or false")


def infer_label_type(
    labels: Iterable[Any], predictions: Iterable[Any], positive: Any
) -> tuple[LabelType, str]:
    """The type to compare in when none is declared, and where it was read from.

    The labels are the ground truth, so the first label's JSON type decides; without labels the
    first prediction's; without either, `positive`'s as written.
    """
    for source, values in (("label", labels), ("prediction", predictions)):
        for value in values:
            if value is not None:
                return type_of(value), source
    return type_of(positive), "positive"


def type_of(value: Any) -> LabelType:
    """The label type a JSON value is written in; objects and arrays compare as their text."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
