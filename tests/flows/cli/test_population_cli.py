"""`runbook evidence list --json|--csv` and `verify --all` on the evidence of real runs."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from flows.cli.app import main
from flows.engine.runner import start_run
from flows.engine.settings import Settings
from flows.evidence.incident import INCIDENT_FILE, Trigger
from flows.evidence.records import Event
from flows.evidence.verify import read_records
from tests.support import FIXTURES

pytestmark = pytest.mark.usefixtures("prefect_api")
GATED = FIXTURES / "runbooks" / "gated.md"


@pytest.fixture
def settings(home: Path) -> Settings:
    current = Settings(home=home, prefect="external")
    start_run(current, GATED, {"service": "api"}, incident_id="pop-1", started_by="cli:alice")
    start_run(
        current,
        GATED,
        {"service": "db"},
        incident_id="pop-2",
        alert={"source": "alertmanager", "labels": {"alertname": "DbDown"}},
        trigger=Trigger.ALERT,
        started_by="alert:alertmanager",
    )
    return current


def test_who_started_an_incident_and_how_are_in_the_chain(settings: Settings) -> None:
    folder = settings.incidents_dir / "pop-2"
    facts = json.loads((folder / INCIDENT_FILE).read_text())
    assert (facts["trigger"], facts["started_by"]) == ("alert", "alert:alertmanager")
    started = next(r for r in read_records(folder) if r.event is Event.RUN_STARTED)
    assert started.data["incident"]["started_by"] == "alert:alertmanager"
    assert started.data["incident"]["trigger"] == "alert"
    facts["started_by"] = "cli:mallory"
    (folder / INCIDENT_FILE).write_text(json.dumps(facts))
    assert main(["evidence", "verify", "pop-2"]) == 1


def test_list_json_and_csv_give_the_population(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["evidence", "list", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"pop-1", "pop-2"}
    one = rows["pop-1"]
    assert (one["runbook"], one["version"], one["kind"], one["drill"]) == (
        "gated",
        1,
        "outage",
        False,
    )
    assert one["status"] == "waiting" and one["closed"] is None
    assert one["commander"] == "alice" and one["indexed"] is True
    assert one["first_response"] is not None and one["time_to_respond_s"] >= 0
    assert main(["evidence", "list", "--csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["id"] for row in table] == [row for row in sorted(rows)]
    assert set(table[0]) >= {"opened", "contained", "commander", "time_to_recover_s", "severity"}


def test_verify_all_names_a_deleted_incident(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evidence", "verify", "--all"]) == 0
    kept = capsys.readouterr().out.split("index head ")[1].split()[0]
    shutil.rmtree(settings.incidents_dir / "pop-1")
    assert main(["evidence", "verify", "--all", "--index-head", kept]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED: pop-1: the index lists it" in out and "folder is gone" in out


def test_a_vanished_incident_id_is_not_reused(settings: Settings) -> None:
    shutil.rmtree(settings.incidents_dir / "pop-1")
    assert main(["run", str(GATED), "--incident", "pop-1", "--input", "service=x"]) != 0
    assert not (settings.incidents_dir / "pop-1").exists()
