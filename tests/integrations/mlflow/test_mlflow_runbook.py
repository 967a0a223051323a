"""A runbook rolls a model back through the engine, Prefect and a real `mlflow server`: once,
even when the run dies between MLflow moving the alias and anyone hearing back; never in a drill.
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from flows.drills.drill import run_drill
from flows.engine.runner import resume_run, start_run
from flows.engine.settings import Settings
from flows.evidence.records import Record
from flows.evidence.verify import read_records, verify_ledger
from tests.fakes.holding_proxy import HoldingProxy
from tests.integrations.mlflow.conftest import RegisteredModel
from tests.support import PROJECT, RUNBOOK_CLI, cli_env

pytestmark = pytest.mark.usefixtures("prefect_api")

ALIAS = "registered-models/alias"
TOKEN = "mlflow-canary-5b7e21"

ROLLBACK = textwrap.dedent(
    """\
    ---
    id: model-rollback
    title: Roll a model back to the version before its champion
    kind: model-failure
    severity: sev2
    version: 1
    owner: "#ml-oncall"
    inputs:
      model:
        type: string
        required: true
        description: Registered model name in MLflow.
    ---
    # Roll a model back

    ## Read the registry

    ```step
    id: versions
    uses: mlflow.model_versions
    drill: run
    with:
      model: "{{ inputs.model }}"
    ```

    ## Point champion at the version before it

    ```step
    id: rollback
    uses: mlflow.set_alias
    with:
      model: "{{ inputs.model }}"
      alias: champion
      version: "{{ steps.versions.previous.champion }}"
      from_version: "{{ steps.versions.aliases.champion }}"
    ```

    ## Mark the version rolled back from

    ```step
    id: tag
    uses: mlflow.tag_version
    with:
      model: "{{ inputs.model }}"
      version: "{{ steps.rollback.before }}"
      reason: "rolled back from by {{ incident.id }}: parity gap above 0.1"
    ```
    """
)

SCENARIO = textwrap.dedent(
    """\
    id: model-rollback-drill
    title: "Tabletop: roll the fraud scorer back"
    runbook: model-rollback
    inputs:
      model: {model}
    participants:
      - {{name: priya, role: ML on-call (IC)}}
    # What a real rollback would output, for the steps after it.
    canned:
      rollback: {{before: "2", after: "1", changed: true, already_done: false}}
    """
)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A library with the rollback runbook (and a drills folder for its scenario)."""
    folder = tmp_path / "library"
    (folder / "models").mkdir(parents=True)
    (folder / "drills").mkdir()
    (folder / "models" / "model-rollback.md").write_text(ROLLBACK)
    return folder


@pytest.fixture
def settings(home: Path, fraud_model: RegisteredModel) -> Settings:
    """Engine settings pointing the mlflow.* actions at the session's MLflow server."""
    return Settings(
        home=home,
        prefect="external",
        mlflow_url=fraud_model.server.url,
        mlflow_token=SecretStr(TOKEN),
    )


def outputs(records: list[Record], step: str) -> dict[str, object]:
    """The outputs the ledger recorded for `step` (its last `step.succeeded`)."""
    done = [r for r in records if r.event == "step.succeeded" and r.step == step]
    assert done, f"step {step!r} never succeeded"
    return dict(done[-1].data["outputs"])


def test_a_runbook_rolls_the_champion_back_and_tags_the_version(
    settings: Settings, fraud_model: RegisteredModel, library: Path, home: Path
) -> None:
    """Read, roll back, tag: MLflow's champion is v1, the ledger says before 2 and after 1."""
    runbook = library / "models" / "model-rollback.md"
    outcome = start_run(settings, runbook, {"model": fraud_model.name}, incident_id="inc-rb")
    assert outcome.status == "succeeded", outcome.error
    assert fraud_model.aliases() == {"champion": "1"}
    assert fraud_model.version_tags("2") == {
        "runbook.incident": "inc-rb",
        "runbook.reason": "rolled back from by inc-rb: parity gap above 0.1",
    }
    folder = home / "incidents" / "inc-rb"
    records = read_records(folder)
    rolled = outputs(records, "rollback")
    assert (rolled["before"], rolled["after"], rolled["changed"]) == ("2", "1", True)
    assert rolled["already_done"] is False
    assert outputs(records, "versions")["aliases"] == {"champion": "2"}
    assert verify_ledger(folder).ok
    ledger = (folder / "ledger.jsonl").read_text()
    assert TOKEN not in ledger


def test_a_run_killed_before_it_heard_back_moves_the_alias_once(
    settings: Settings,
    fraud_model: RegisteredModel,
    proxy: HoldingProxy,
    library: Path,
    home: Path,
) -> None:
    """MLflow moved the alias, the run died before the answer came: the resume finds it moved,
    records it done with the version it moved from, and sends no second move."""
    server = fraud_model.server
    seen = len(server.requests())
    proxy.hold("POST", f"/api/2.0/mlflow/{ALIAS}")
    runbook = library / "models" / "model-rollback.md"
    env = cli_env(home, RUNBOOK_MLFLOW_URL=proxy.url, RUNBOOK_MLFLOW_TIMEOUT_S="120")
    given = ["--incident", "inc-killed", "--input", f"model={fraud_model.name}"]
    cli = subprocess.Popen(
        [*RUNBOOK_CLI, "run", str(runbook), *given],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PROJECT,
    )
    try:
        until = time.monotonic() + 120
        while fraud_model.aliases() != {"champion": "1"}:
            assert cli.poll() is None, "the run ended before its rollback was sent"
            assert time.monotonic() < until, "the rollback never reached MLflow"
            time.sleep(0.2)
        cli.send_signal(signal.SIGKILL)
        cli.wait(timeout=10)
    finally:
        cli.kill()
        proxy.release()
    folder = home / "incidents" / "inc-killed"
    ended = [r for r in read_records(folder) if r.step == "rollback" and r.event != "step.started"]
    assert ended == [], "the run recorded the rollback's end before it died"

    outcome = resume_run(settings, "inc-killed")

    assert outcome.status == "succeeded", outcome.error
    rolled = outputs(read_records(folder), "rollback")
    assert (rolled["before"], rolled["after"], rolled["already_done"]) == ("2", "1", True)
    assert fraud_model.aliases() == {"champion": "1"}
    assert server.posts(ALIAS, seen) == 1
    assert fraud_model.version_tags("2")["runbook.incident"] == "inc-killed"
    assert verify_ledger(folder).ok


def test_a_drill_leaves_the_alias_where_it_was(
    settings: Settings, fraud_model: RegisteredModel, library: Path, home: Path
) -> None:
    """The same runbook as a drill: it reads the registry, but champion stays on v2, no tag is
    set, and the ledger says which move was simulated."""
    server = fraud_model.server
    seen = len(server.requests())
    scenario = library / "drills" / "model-rollback.yaml"
    scenario.write_text(SCENARIO.format(model=fraud_model.name))
    result = run_drill(settings, scenario)
    assert result.outcome.status == "succeeded", result.outcome.error
    assert fraud_model.aliases() == {"champion": "2"}
    assert fraud_model.version_tags("2") == {}
    assert server.posts(ALIAS, seen) == server.posts("model-versions/set-tag", seen) == 0
    records = read_records(result.outcome.evidence)
    assert outputs(records, "versions")["previous"] == {"champion": "1"}
    [asked] = [r for r in records if r.event == "step.started" and r.step == "rollback"]
    assert asked.data["with"] == {
        "model": fraud_model.name,
        "alias": "champion",
        "version": "1",
        "from_version": "2",
        "create": False,
    }
    assert outputs(records, "rollback")["simulated"] is True
