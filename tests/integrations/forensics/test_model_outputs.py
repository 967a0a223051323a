"""The model collector's numbers as `forensics.snapshot` outputs: returned, recorded, known to
`runbook validate`, and branched on by a real run."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flows.contract.actions import ActionContext
from flows.engine.registry import default_registry
from flows.engine.runner import start_run
from flows.engine.settings import Settings
from flows.evidence.ledger import Ledger
from flows.evidence.records import RunbookRef
from flows.evidence.redact import Redactor
from flows.evidence.verify import read_records
from flows.runbook.validate import validate_paths
from integrations.backends import local_backends
from integrations.forensics.actions import SnapshotArgs, snapshot
from tests.integrations.forensics.predictions import biased_rows, write_lines

Snapshot = Callable[[list[dict[str, Any]]], dict[str, Any]]


@pytest.fixture
def run_snapshot(tmp_path: Path) -> Iterator[Snapshot]:
    """Run `forensics.snapshot` with these collectors as step `snap` of incident inc-1."""
    backends = local_backends(tmp_path / "backends", echo=lambda line: None)
    redactor = Redactor()
    ref = RunbookRef(id="bias", version=1, sha256="0" * 64)
    with Ledger(tmp_path, "inc-1", ref, redactor) as ledger:
        context = ActionContext(
            incident="inc-1",
            runbook="bias",
            step="snap",
            tickets=backends.tickets,
            chat=backends.chat,
            evidence=ledger,
            home=tmp_path,
            redact=lambda text: redactor.redact(text)[0],
            evidence_dir=tmp_path,
        )

        def run(collectors: list[dict[str, Any]]) -> dict[str, Any]:
            return snapshot(SnapshotArgs.model_validate({"collectors": collectors}), context)

        yield run


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_snapshot_outputs_the_model_numbers(tmp_path: Path, run_snapshot: Snapshot) -> None:
    """`model` carries accuracy, fairness and each part's status; a failed metrics URL is in
    `failures` and in the custody record, and the numbers are recorded as collected."""
    predictions = write_lines(tmp_path / "p.jsonl", biased_rows(500, seed=5))
    url = f"http://127.0.0.1:{closed_port()}/metrics"
    out = run_snapshot(
        [
            {"type": "model", "predictions_file": str(predictions), "group_field": "region"},
            {"type": "model", "name": "shadow", "metrics_url": url, "artifact_path": ""},
        ]
    )
    model = out["model"]
    assert set(out["models"]) == {"model"}  # the shadow's only part failed: nothing stored
    assert out["models"]["model"] == model
    assert 0 < model["accuracy"] < 1 and model["sample_size"] == 500
    assert model["fairness"]["parity_gap"] > 0.4
    assert model["fairness"]["equalized_odds_difference"] > 0
    assert set(model["fairness"]["groups"]) == {"east", "north", "south"}
    assert model["parts"]["predictions"] == "collected" and model["drift"] is None
    [failure] = out["failures"]
    assert failure["collector"] == "model" and failure["name"] == "shadow.metrics_url"
    records = {r.event: r.data for r in read_records(tmp_path)}
    assert records["artifact.collected"]["facts"]["summary"] == model
    assert records["artifact.failed"]["name"] == "shadow.metrics_url"
    assert json.dumps(model)  # what the ledger records and a resumed run reads back


def test_model_collectors_are_named_apart(tmp_path: Path, run_snapshot: Snapshot) -> None:
    """Two model collectors need two names; each is in `models` under its own, and `model`
    is None when none is named `model`."""
    first = write_lines(tmp_path / "a.jsonl", [{"prediction": 1, "label": 1}])
    second = write_lines(tmp_path / "b.jsonl", [{"prediction": 0, "label": 1}])
    with pytest.raises(ValidationError, match="share the name model: give each its own"):
        run_snapshot(
            [
                {"type": "model", "predictions_file": str(first)},
                {"type": "model", "predictions_file": str(second)},
            ]
        )
    out = run_snapshot(
        [
            {"type": "model", "name": "champion", "predictions_file": str(first)},
            {"type": "model", "name": "challenger", "predictions_file": str(second)},
        ]
    )
    assert out["model"] is None
    assert {n: m["accuracy"] for n, m in out["models"].items()} == {
        "champion": 1.0,
        "challenger": 0.0,
    }
    assert sorted(a["name"] for a in out["artifacts"]) == ["challenger.json", "champion.json"]


RUNBOOK = """---
id: bias-check
title: Bias check
kind: other
severity: sev3
version: 1
owner: "#ml"
inputs:
  predictions: {{type: string, required: true}}
  positive: {{type: integer, default: 1}}
  metrics_url: {{type: string, default: ""}}
---
# Snapshot the model, then act on its parity gap
```step
id: snap
uses: forensics.snapshot
with:
  collectors:
    - type: model
      predictions_file: "{{{{ inputs.predictions }}}}"
      metrics_url: "{{{{ inputs.metrics_url }}}}"
      group_field: region
      positive: "{{{{ inputs.positive }}}}"
```
```step
id: biased
uses: evidence.note
needs: [snap]
if: "{condition}"
with:
  text: "parity gap {{{{ steps.snap.model.fairness.parity_gap }}}}"
```
```step
id: fair
uses: evidence.note
needs: [snap]
if: "steps.snap.model.fairness.parity_gap <= 0.1"
with:
  text: "within bounds"
```
"""


def test_validate_knows_the_model_outputs(tmp_path: Path) -> None:
    """`runbook validate` accepts steps.snap.model.fairness... and refuses a name the action does
    not return, listing the outputs it does."""
    good = tmp_path / "good.md"
    good.write_text(RUNBOOK.format(condition="steps.snap.model.fairness.parity_gap > 0.1"))
    assert validate_paths([good], default_registry())[1] == []
    bad = tmp_path / "bad.md"
    bad.write_text(RUNBOOK.format(condition="steps.snap.parity_gap > 0.1"))
    [problem] = validate_paths([bad], default_registry())[1]
    assert "steps.snap.parity_gap" in problem.message
    assert "model, models" in problem.message


@pytest.mark.usefixtures("prefect_api")
def test_a_run_branches_on_the_parity_gap(home: Path, tmp_path: Path) -> None:
    """Through a real Prefect run, with `positive` templated from an integer input and the
    metrics URL left empty, the biased model's gap takes the `> 0.1` branch."""
    predictions = write_lines(tmp_path / "p.jsonl", biased_rows(600, seed=9))
    path = tmp_path / "bias-check.md"
    path.write_text(RUNBOOK.format(condition="steps.snap.model.fairness.parity_gap > 0.1"))
    outcome = start_run(
        Settings(home=home, prefect="external"),
        path,
        {"predictions": str(predictions), "positive": 1},
        incident_id="inc-bias",
    )
    assert outcome.steps == {"snap": "succeeded", "biased": "succeeded", "fair": "skipped"}
    records = read_records(home / "incidents" / "inc-bias")
    [note] = [r for r in records if r.event == "note"]
    gap = float(note.data["text"].removeprefix("parity gap "))
    [done] = [r for r in records if r.event == "step.succeeded" and r.step == "snap"]
    assert gap == done.outputs["model"]["fairness"]["parity_gap"] > 0.4
    assert done.outputs["failures"] == []
    assert done.outputs["model"]["parts"]["metrics_url"] == "not configured"
