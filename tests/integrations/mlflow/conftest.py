"""A real MLflow tracking server for the session (loopback, SQLite store), and models made in it.

The server is MLflow's own `mlflow server` from the dev extra; the tests skip, saying so, where it
is not installed. Models are made through MLflow's REST API as a training job would make them (an
experiment, a run, versions from the run), each test with its own model name. The server's
access log is read to count the requests that reached it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from integrations.config import MlflowConfig
from tests.fakes.holding_proxy import HoldingProxy

START_TIMEOUT_S = 180
RUNNING = re.compile(rb"Uvicorn running on (http://127\.0\.0\.1:\d+)")
ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


def mlflow_command() -> Path | None:
    """The `mlflow` console script beside this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("mlflow")
    if beside.exists():
        return beside
    found = shutil.which("mlflow")
    return Path(found) if found else None


@dataclass
class MlflowServer:
    """A running `mlflow server`: its URL, its access log, and how long it took to start."""

    url: str
    access_log: Path
    start_s: float

    @property
    def api(self) -> str:
        return f"{self.url}/api/2.0/mlflow/"

    def config(self, **fields: Any) -> MlflowConfig:
        """Engine settings pointing at this server."""
        return MlflowConfig(url=self.url, **fields)

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request the server logged, in order, once every request sent
        so far is in the log (a marker request is sent and waited for)."""
        marker = f"/health?marker={uuid.uuid4().hex}"
        httpx.get(self.url + marker, timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = self.access_log.read_text(errors="replace").splitlines()
            seen = [(m["method"], m["path"]) for m in map(ACCESS.search, lines) if m]
            if ("GET", marker) in seen:
                return [entry for entry in seen if not entry[1].startswith("/health?marker=")]
            time.sleep(0.05)
        raise AssertionError("the marker request never reached MLflow's access log")

    def posts(self, endpoint: str, since: int) -> int:
        """How many POSTs to `endpoint` (e.g. `registered-models/alias`) reached the server
        after the first `since` requests."""
        path = f"/api/2.0/mlflow/{endpoint}"
        return sum(1 for m, p in self.requests()[since:] if m == "POST" and p == path)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """`mlflow server` on 127.0.0.1 (a port it picks) with a SQLite backend store."""
    command = mlflow_command()
    if command is None:
        pytest.skip(
            "MLflow is not installed, so there is no `mlflow server` to test against:"
            " pip install -e '.[dev]' installs it"
        )
    folder = tmp_path_factory.mktemp("mlflow")
    access_log, server_log = folder / "access.log", folder / "server.log"
    # No background job runner (it starts two more processes); unbuffered, so the access log
    # is on disk when a request has been answered.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    with access_log.open("wb") as out, server_log.open("wb") as err:
        process = subprocess.Popen(
            [
                str(command),
                "server",
                "--backend-store-uri",
                f"sqlite:///{folder / 'mlflow.db'}",
                "--default-artifact-root",
                str(folder / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env=env,
            start_new_session=True,
        )
    try:
        url = _wait_until_serving(process, server_log, started + START_TIMEOUT_S)
        yield MlflowServer(url=url, access_log=access_log, start_s=time.monotonic() - started)
    finally:
        _stop(process)


def _wait_until_serving(process: subprocess.Popen[bytes], log: Path, deadline: float) -> str:
    """The server's URL once uvicorn says where it listens and /health answers."""
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{tail}")
        if url is None:
            found = RUNNING.search(log.read_bytes())
            url = found.group(1).decode() if found else None
        if url is not None:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass  # listening, not answering yet
        time.sleep(0.2)
    raise RuntimeError(f"mlflow server did not serve within {START_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and the worker processes it started (its process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@dataclass
class RegisteredModel:
    """A model made in the test server: two versions from one training run."""

    server: MlflowServer
    name: str
    run_id: str

    def call(self, method: str, endpoint: str, **body: Any) -> dict[str, Any]:
        """One REST call to the server, as a client other than the engine's makes it."""
        if method == "GET":
            response = httpx.get(self.server.api + endpoint, params=body, timeout=30)
        else:
            response = httpx.request(method, self.server.api + endpoint, json=body, timeout=30)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def aliases(self) -> dict[str, str]:
        """alias -> version, as MLflow holds them now."""
        found = self.call("GET", "registered-models/get", name=self.name)["registered_model"]
        return {a["alias"]: a["version"] for a in found.get("aliases", [])}

    def version_tags(self, version: str) -> dict[str, str]:
        """The tags of one version, as MLflow holds them now."""
        found = self.call("GET", "model-versions/get", name=self.name, version=version)
        return {t["key"]: t["value"] for t in found["model_version"].get("tags", [])}

    def add_version(self, **fields: Any) -> str:
        """Register one more version of the model from the training run; its number."""
        made = self.call(
            "POST",
            "model-versions/create",
            name=self.name,
            source=f"runs:/{self.run_id}/model",
            run_id=self.run_id,
            **fields,
        )
        return str(made["model_version"]["version"])


def register_model(server: MlflowServer, name: str | None = None) -> RegisteredModel:
    """A registered model with versions 1 and 2 from one run, alias `champion` on version 2."""
    name = name or f"fraud-scorer-{uuid.uuid4().hex[:8]}"
    model = RegisteredModel(server, name, run_id="")
    experiment = model.call("POST", "experiments/create", name=f"training-{name}")
    run = model.call("POST", "runs/create", experiment_id=experiment["experiment_id"])
    model.run_id = run["run"]["info"]["run_id"]
    model.call("POST", "registered-models/create", name=name)
    model.add_version(description="first release")
    model.add_version(description="retrained on October data")
    model.call(
        "POST", "model-versions/set-tag", name=name, version="1", key="validated", value="yes"
    )
    model.call("POST", "registered-models/alias", name=name, alias="champion", version="2")
    return model


@pytest.fixture
def fraud_model(mlflow_server: MlflowServer) -> RegisteredModel:
    """A fresh registered model in the session's server: v1, v2, `champion` -> 2."""
    return register_model(mlflow_server)


@pytest.fixture
def proxy(mlflow_server: MlflowServer) -> Iterator[HoldingProxy]:
    """A proxy in front of the session's MLflow server that can hold back or refuse answers."""
    held = HoldingProxy(mlflow_server.url).start()
    yield held
    held.stop()
