"""Drift of a model's score and features against a reference: PSI against a numpy computation,
KS against scipy, from a reference file and from a real HTTP server.

PSI is compared with numpy's quantiles and histogram to 1e-9 (the data are continuous, so no
value sits on a cut point, where the two could bin differently). The KS statistic is compared
with scipy's `ks_2samp` to 1e-12; its p-value with scipy's `kstwobign` (the same asymptotic
formula) to 1e-9, and with `ks_2samp`'s own (exact below 10,000 rows) to 0.02.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from flows.evidence.redact import Redactor
from integrations.forensics.actions import COLLECTORS, SnapshotArgs
from integrations.forensics.collectors import drift
from integrations.forensics.collectors.base import Collected, Kit, Missed, Piece
from integrations.forensics.store import ArtifactStore
from tests.integrations.forensics.predictions import biased_rows, write_lines


def numpy_psi(reference: list[float], current: list[float]) -> float:
    """PSI over the reference's deciles, as a numpy user would write it, empty shares 1e-4."""
    cuts = np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9)))
    edges = np.concatenate([[-np.inf], cuts, [np.inf]])
    expected = np.histogram(reference, edges)[0] / len(reference)
    actual = np.histogram(current, edges)[0] / len(current)
    expected, actual = np.maximum(expected, 1e-4), np.maximum(actual, 1e-4)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def samples(seed: int, n: int, m: int, shift: float, scale: float = 1.0) -> tuple[list, list]:
    """A normal reference of n values and a current sample of m, shifted and scaled."""
    rng = random.Random(seed)
    reference = [rng.gauss(0, 1) for _ in range(n)]
    current = [rng.gauss(shift, scale) for _ in range(m)]
    return reference, current


@pytest.mark.parametrize(
    ("n", "m", "shift", "scale"),
    [(5000, 1000, 0.0, 1.0), (5000, 1000, 0.3, 1.0), (2000, 3000, 0.0, 2.0), (300, 200, 1.0, 0.5)],
)
def test_psi_and_ks_match_numpy_and_scipy(n: int, m: int, shift: float, scale: float) -> None:
    """PSI equals numpy's decile computation; KS and its p-value equal scipy's."""
    reference, current = samples(n + m, n, m, shift, scale)
    result = drift.compare(reference, current)
    assert result["psi"] == pytest.approx(numpy_psi(reference, current), abs=1e-9)
    scipy_ks = stats.ks_2samp(reference, current)
    assert result["ks"] == pytest.approx(scipy_ks.statistic, abs=1e-12)
    effective = n * m / (n + m)
    limit = stats.kstwobign.sf(math.sqrt(effective) * scipy_ks.statistic)
    assert result["ks_pvalue"] == pytest.approx(limit, abs=1e-9)
    assert result["ks_pvalue"] == pytest.approx(scipy_ks.pvalue, abs=0.02)
    assert (result["reference_count"], result["count"]) == (n, m)


def test_psi_tells_a_shift_from_noise() -> None:
    """The same distribution stays under 0.1 (no change); a one-sigma shift passes 0.25."""
    same = drift.compare(*samples(1, 5000, 2000, 0.0))
    moved = drift.compare(*samples(2, 5000, 2000, 1.0))
    assert same["psi"] < 0.1 and same["ks_pvalue"] > 0.05
    assert moved["psi"] > 0.25 and moved["ks_pvalue"] < 1e-6


def test_an_empty_bin_counts_as_a_small_share() -> None:
    """A current sample all in the reference's top decile gives a large, finite PSI: each of
    the nine empty bins counts as a share of 1e-4."""
    reference = [float(v) for v in range(100)]
    current = [1000.0] * 50
    expected = 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + (1 - 0.1) * math.log(1 / 0.1)
    assert drift.psi(reference, current) == pytest.approx(expected, abs=1e-12)
    assert drift.psi(reference, current) == pytest.approx(numpy_psi(reference, current))


def test_repeated_cut_points_merge_into_one_bin() -> None:
    """A reference of mostly one value has fewer than ten bins, and PSI stays finite and 0 for
    the same shares."""
    reference = [0.0] * 80 + [1.0] * 20
    current = [0.0] * 40 + [1.0] * 10
    assert drift.psi(reference, current) == pytest.approx(0.0, abs=1e-12)
    assert drift.compare(reference, current)["ks"] == pytest.approx(0.0, abs=1e-12)


def test_an_empty_sample_has_no_numbers() -> None:
    """With nothing to compare, PSI and KS are None, and the counts say why."""
    assert drift.compare([], [1.0]) == {
        "reference_count": 0,
        "count": 1,
        "psi": None,
        "ks": None,
        "ks_pvalue": None,
    }


def gather(tmp_path: Path, spec: dict[str, Any]) -> list[Piece]:
    """Run one model collector spec with the engine's pattern redaction."""
    [model] = SnapshotArgs.model_validate({"collectors": [spec]}).collectors
    redactor = Redactor()
    kit = Kit(ArtifactStore(tmp_path / "evidence"), lambda text: redactor.redact(text)[0])
    return list(COLLECTORS["model"](model, kit))


def stored(pieces: list[Piece]) -> dict[str, Any]:
    """The one stored document among the pieces."""
    [piece] = [p for p in pieces if isinstance(p, Collected)]
    return dict(json.loads(piece.artifact.path.read_bytes()))


def drifted_logs(tmp_path: Path) -> tuple[Path, Path, list[dict[str, Any]], list[dict[str, Any]]]:
    """A reference log and a current one whose `age` moved up ten years and `income` did not."""
    reference = biased_rows(4000, seed=21)
    current = [row | {"age": row["age"] + 10} for row in biased_rows(1000, seed=22)]
    return (
        write_lines(tmp_path / "reference.jsonl", reference),
        write_lines(tmp_path / "predictions.jsonl", current),
        reference,
        current,
    )


def test_the_collector_measures_drift_of_score_and_features(tmp_path: Path) -> None:
    """The document's drift of the score and each named feature is what `compare` gives on the
    same columns; the moved feature crosses 0.25 and the others stay below 0.1."""
    reference_file, predictions, reference, current = drifted_logs(tmp_path)
    spec = {
        "type": "model",
        "predictions_file": str(predictions),
        "score_field": "score",
        "features": ["age", "income"],
        "reference_file": str(reference_file),
    }
    document = stored(gather(tmp_path, spec))
    found = document["drift"]
    assert document["parts"]["drift"] == {"status": "collected"}
    for column, measured in (("score", found["score"]), *found["features"].items()):
        expected = drift.compare([r[column] for r in reference], [r[column] for r in current])
        assert {k: measured[k] for k in expected} == pytest.approx(expected, abs=1e-12)
        assert measured["column"] == column
    assert found["features"]["age"]["psi"] > 0.25
    assert found["features"]["income"]["psi"] < 0.1 and found["score"]["psi"] < 0.1
    assert found["reference"]["rows"] == 4000


def test_the_reference_sample_is_bounded(tmp_path: Path) -> None:
    """Only the last `reference_sample` reference rows are read."""
    reference_file, predictions, reference, current = drifted_logs(tmp_path)
    spec = {
        "type": "model",
        "predictions_file": str(predictions),
        "features": ["age"],
        "reference_file": str(reference_file),
        "reference_sample": 500,
    }
    found = stored(gather(tmp_path, spec))["drift"]
    assert found["reference"]["rows"] == 500
    expected = drift.compare([r["age"] for r in reference[-500:]], [r["age"] for r in current])
    assert found["features"]["age"]["psi"] == pytest.approx(expected["psi"], abs=1e-12)


class ReferenceHandler(BaseHTTPRequestHandler):
    """Answers /reference with the server's rows as JSON lines, anything else with 404."""

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        if self.path != "/reference":
            self.send_error(404)
            return
        rows = self.server.rows  # type: ignore[attr-defined]
        body = "".join(json.dumps(r) + "\n" for r in rows).encode() + b"not json\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def reference_server() -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server on 127.0.0.1 (port chosen by the OS) answering reference rows."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ReferenceHandler)
    httpd.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_a_reference_url_gives_the_same_drift_as_the_file(
    tmp_path: Path, reference_server: ThreadingHTTPServer
) -> None:
    """Reference rows answered as JSON lines over HTTP measure the same drift as from a file,
    and the line that is not JSON is counted."""
    reference_file, predictions, reference, _ = drifted_logs(tmp_path)
    reference_server.rows = reference  # type: ignore[attr-defined]
    port = reference_server.server_address[1]
    base = {"type": "model", "predictions_file": str(predictions), "features": ["age"]}
    from_file = stored(gather(tmp_path, {**base, "reference_file": str(reference_file)}))
    url = f"http://127.0.0.1:{port}/reference"
    from_url = stored(gather(tmp_path, {**base, "reference_url": url}))
    assert reference_server.paths == ["/reference"]  # type: ignore[attr-defined]
    assert from_url["drift"]["features"] == from_file["drift"]["features"]
    assert from_url["drift"]["reference"]["unparsed_lines"] == 1


def test_a_failing_reference_loses_only_the_drift(
    tmp_path: Path, reference_server: ThreadingHTTPServer
) -> None:
    """A reference URL answering 404 fails the drift part; predictions and fairness remain."""
    _, predictions, _, _ = drifted_logs(tmp_path)
    port = reference_server.server_address[1]
    spec = {
        "type": "model",
        "predictions_file": str(predictions),
        "group_field": "region",
        "features": ["age"],
        "reference_url": f"http://127.0.0.1:{port}/gone?token=abc",
    }
    pieces = gather(tmp_path, spec)
    [miss] = [p for p in pieces if isinstance(p, Missed)]
    assert miss.name == "model.drift"
    assert miss.error == f"http://127.0.0.1:{port}/gone: GET answered 404"
    document = stored(pieces)
    assert document["parts"]["drift"]["status"] == "failed" and "drift" not in document
    assert document["scores"]["fairness"]["parity_gap"] > 0
