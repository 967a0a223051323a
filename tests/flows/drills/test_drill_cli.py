"""Drills from the command line: run a shipped scenario, read its report, check freshness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import PROJECT, run_cli


@pytest.mark.usefixtures("prefect_api")
def test_drill_run_report_and_freshness(home: Path) -> None:
    """A scripted drill succeeds, its report shows the score, and freshness sees it."""
    run = run_cli(
        home,
        "drill",
        "runbooks/drills/service-outage.yaml",
        "--speed",
        "600",
        "--facilitator",
        "sam",
        "--json",
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "succeeded" and outcome["runbook"] == "service-outage"
    report = run_cli(home, "drill", "report", outcome["incident"])
    assert report.returncode == 0 and "facilitated by sam" in report.stdout
    bundle = home / "drill.zip"
    assert (
        run_cli(home, "evidence", "export", outcome["incident"], "--out", str(bundle)).returncode
        == 0
    )
    verified = run_cli(home, "evidence", "verify", str(bundle))
    assert verified.returncode == 0 and verified.stdout.startswith("ok: bundle intact")
    fresh = run_cli(home, "freshness", "runbooks", "--max-age", "90d")
    assert fresh.returncode == 1  # the other two runbooks were never drilled
    lines = {line.split()[0]: line for line in fresh.stdout.splitlines()[1:]}
    assert lines["service-outage"].endswith("ok")
    assert lines["credential-leak"].endswith("STALE")
    assert "never" not in run_cli(home, "list").stdout.split("service-outage")[1].splitlines()[0]


def test_drill_validate_reports_scenario_problems_at_their_line(tmp_path: Path) -> None:
    """A scenario naming a gate its runbook lacks is reported as path:line, exit 1."""
    (tmp_path / "outage").mkdir()
    (tmp_path / "drills").mkdir()
    (tmp_path / "outage" / "service-outage.md").write_text(
        (PROJECT / "runbooks" / "outage" / "service-outage.md").read_text()
    )
    scenario = tmp_path / "drills" / "bad.yaml"
    source = (PROJECT / "runbooks" / "drills" / "service-outage.yaml").read_text()
    good = run_cli(
        tmp_path, "drill", "validate", str(PROJECT / "runbooks/drills/service-outage.yaml")
    )
    assert good.returncode == 0, good.stdout + good.stderr
    bad_text = source.replace("answers:\n", "answers:\n  no-such-gate: {by: nobody}\n", 1)
    scenario.write_text(bad_text)  # its library is tmp_path
    bad = run_cli(tmp_path, "drill", "validate", str(scenario))
    assert bad.returncode == 1
    assert f"{scenario}:33: scenario: answers: 'no-such-gate' is no gate" in bad.stdout
