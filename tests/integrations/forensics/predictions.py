"""Generated, seeded prediction logs of a model that treats its groups differently."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BASE_RATES = {"north": 0.6, "south": 0.3, "east": 0.45}
"""How often each group's true label is positive."""

SCORE_BIAS = {"north": 0.2, "south": -0.1, "east": 0.0}
"""What the model adds to each group's score whatever its label: the bias to find."""


def biased_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` predictions: region, label (0/1), score (a probability), prediction (score >= 0.5)
    and two numeric features, `age` and `income`."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        region = rng.choice(sorted(BASE_RATES))
        label = int(rng.random() < BASE_RATES[region])
        mean = 0.35 + 0.3 * label + SCORE_BIAS[region]
        score = min(1.0, max(0.0, rng.gauss(mean, 0.15)))
        rows.append(
            {
                "region": region,
                "label": label,
                "score": round(score, 6),
                "prediction": int(score >= 0.5),
                "age": round(rng.gauss(40, 12), 3),
                "income": round(rng.lognormvariate(10, 0.5), 2),
            }
        )
    return rows


def write_lines(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows as JSON lines; return the path."""
    with path.open("w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return path
