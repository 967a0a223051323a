"""Drills from the command line: run a shipped scenario, read its report, check freshness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import PROJECT, run_cli

DRILLS = PROJECT / "runbooks" / "drills"


@pytest.mark.usefixtures("prefect_api")
def test_drill_run_report_and_freshness(home: Path) -> None:
    """A scripted drill succeeds, its report names the facilitator, its bundle verifies, and
    freshness lists it as a rehearsal that does not make the runbook fresh."""
    run = run_cli(
        home,
        "drill",
        "runbooks/drills/service-outage.yaml",
        "--speed",
        "600",
        "--facilitator",
        "lee",
        "--json",
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "succeeded" and outcome["runbook"] == "service-outage"
    report = run_cli(home, "drill", "report", outcome["incident"])
    assert report.returncode == 0 and "Facilitator: lee;" in report.stdout
    bundle = home / "drill.zip"
    assert (
        run_cli(home, "evidence", "export", outcome["incident"], "--out", str(bundle)).returncode
        == 0
    )
    verified = run_cli(home, "evidence", "verify", str(bundle))
    assert verified.returncode == 0 and verified.stdout.startswith("ok: bundle intact")
    fresh = run_cli(home, "freshness", "runbooks", "--max-age", "90d")
    assert fresh.returncode == 1  # a rehearsal alone keeps nothing fresh
    table = fresh.stdout.split("\n\n")[0].splitlines()[1:]
    rows = {line.split()[0]: line.split() for line in table}
    assert rows["service-outage"][2:4] == ["STALE", "never"]
    [rehearsal] = [
        line for line in fresh.stdout.splitlines() if line.startswith("  service-outage v")
    ]
    assert outcome["incident"] in rehearsal and rehearsal.endswith("; does not count")
    listed = run_cli(home, "list").stdout.split("service-outage")[1].splitlines()[0]
    assert "(rehearsal)" in listed


@pytest.mark.usefixtures("prefect_api")
def test_an_injected_failure_is_one_line_not_a_traceback(home: Path) -> None:
    """The model drill's Slack outage fails a step: stderr says so in one line, no traceback."""
    run = run_cli(home, "drill", str(DRILLS / "model-degradation.yaml"), "--speed", "600")
    assert run.returncode == 0, run.stderr
    assert "drill inject: the chat system is down" in run.stderr
    assert "Traceback" not in run.stderr
    assert "inject-caused" in run.stdout


def test_drill_validate_reports_scenario_problems_at_their_line(tmp_path: Path) -> None:
    """A scenario naming a gate its runbook lacks is reported as path:line, exit 1."""
    (tmp_path / "outage").mkdir()
    (tmp_path / "drills").mkdir()
    (tmp_path / "outage" / "service-outage.md").write_text(
        (PROJECT / "runbooks" / "outage" / "service-outage.md").read_text()
    )
    scenario = tmp_path / "drills" / "bad.yaml"
    source = (DRILLS / "service-outage.yaml").read_text()
    good = run_cli(tmp_path, "drill", "validate", str(DRILLS / "service-outage.yaml"))
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout == "1 scenario ok\n"
    bad_text = source.replace("answers:\n", "answers:\n  no-such-gate: {by: nobody}\n", 1)
    scenario.write_text(bad_text)  # its library is tmp_path
    bad = run_cli(tmp_path, "drill", "validate", str(scenario))
    assert bad.returncode == 1
    assert f"{scenario}:33: scenario: answers: 'no-such-gate' is no gate" in bad.stdout


def test_drill_validate_checks_every_scenario_in_a_folder(tmp_path: Path) -> None:
    """A folder is searched for scenarios: the shipped ones are counted as ok; a broken one in a
    folder is named with its file and line, and a path that does not exist is a problem."""
    shipped = sorted(DRILLS.glob("*.yaml"))
    ok = run_cli(tmp_path, "drill", "validate", str(DRILLS))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout == f"{len(shipped)} scenarios ok\n"
    folder = tmp_path / "drills"
    folder.mkdir()
    (folder / "broken.yaml").write_text("id: Broken Id\n")
    mixed = run_cli(tmp_path, "drill", "validate", str(folder), str(tmp_path / "nope"))
    assert mixed.returncode == 1
    assert f"{folder / 'broken.yaml'}:1: scenario: id" in mixed.stdout
    assert f"{tmp_path / 'nope'}: no such scenario file or folder" in mixed.stdout
    assert "Is a directory" not in mixed.stdout + mixed.stderr
