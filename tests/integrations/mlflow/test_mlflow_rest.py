"""The registry client's credentials, refusals and retries, against a loopback server that answers
as MLflow does and records every request; its settings; and `runbook doctor` on a real server."""

from __future__ import annotations

import base64
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from flows.engine.settings import Settings
from integrations.config import MlflowConfig
from integrations.mlflow.rest import MlflowRegistry, RegistryError
from tests.integrations.mlflow.conftest import MlflowServer
from tests.support import PROJECT, RUNBOOK_CLI, cli_env, serve_in_thread

TOKEN = "mlflow-canary-0c9d"
MODEL = {"registered_model": {"name": "fraud-scorer", "aliases": [{"alias": "a", "version": "1"}]}}


@dataclass
class Registry:
    """Answers `registered-models/get` as MLflow does, after the statuses queued in `answers`."""

    url: str = ""
    answers: list[int] = field(default_factory=list)
    seen: list[dict[str, str]] = field(default_factory=list)

    async def get_model(self, request: Request) -> JSONResponse:
        self.seen.append(dict(request.headers))
        status = self.answers.pop(0) if self.answers else 200
        if status == 401:
            body = {"error_code": "UNAUTHENTICATED", "message": "You are not authenticated."}
            return JSONResponse(body, status_code=401)
        if status != 200:
            body = {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}
            return JSONResponse(body, status_code=status, headers={"Retry-After": "0"})
        return JSONResponse(MODEL)


@pytest.fixture
def registry() -> Iterator[Registry]:
    """A loopback stand-in for MLflow's `registered-models/get`, recording headers."""
    fake = Registry()
    app = Starlette(routes=[Route("/api/2.0/mlflow/registered-models/get", fake.get_model)])
    with serve_in_thread(app) as url:
        fake.url = url
        yield fake


def test_a_token_is_sent_as_a_bearer_token(registry: Registry) -> None:
    """RUNBOOK_MLFLOW_TOKEN alone is an `Authorization: Bearer` header, as MLflow's client sends."""
    with MlflowRegistry(MlflowConfig(url=registry.url, token=SecretStr(TOKEN))) as client:
        assert client.model("fraud-scorer").aliases == {"a": "1"}
    assert registry.seen[0]["authorization"] == f"Bearer {TOKEN}"


def test_a_user_and_token_are_sent_as_basic_auth(registry: Registry) -> None:
    """With RUNBOOK_MLFLOW_USER, the token is the password of basic auth."""
    config = MlflowConfig(url=registry.url, user="runbook-bot", token=SecretStr(TOKEN))
    with MlflowRegistry(config) as client:
        client.model("fraud-scorer")
    pair = base64.b64encode(f"runbook-bot:{TOKEN}".encode()).decode()
    assert registry.seen[0]["authorization"] == f"Basic {pair}"


def test_refused_credentials_say_what_to_check_without_the_token(registry: Registry) -> None:
    """A 401 names the server and the settings to check, and never the token."""
    registry.answers = [401]
    with (
        MlflowRegistry(MlflowConfig(url=registry.url, token=SecretStr(TOKEN))) as client,
        pytest.raises(RegistryError) as refused,
    ):
        client.model("fraud-scorer")
    message = str(refused.value)
    assert message == (
        f"MLflow at {registry.url} refused reading model 'fraud-scorer' (401: You are not"
        " authenticated.): check RUNBOOK_MLFLOW_TOKEN (and RUNBOOK_MLFLOW_USER for basic auth)"
        " and the account's permissions on the model"
    )
    assert len(registry.seen) == 1


def test_a_busy_server_is_asked_again(registry: Registry) -> None:
    """503 and 429 mean "not now": the request is sent again, and the answer used."""
    registry.answers = [503, 429]
    with MlflowRegistry(MlflowConfig(url=registry.url)) as client:
        assert client.model("fraud-scorer").name == "fraud-scorer"
    assert len(registry.seen) == 3


def test_a_server_busy_past_the_tries_says_so(registry: Registry) -> None:
    """Three 503s in a row fail with MLflow's own words."""
    registry.answers = [503, 503, 503]
    with (
        MlflowRegistry(MlflowConfig(url=registry.url)) as client,
        pytest.raises(RegistryError, match=r"refused reading model 'fraud-scorer': busy"),
    ):
        client.model("fraud-scorer")
    assert len(registry.seen) == 3


def test_a_url_that_is_not_http_is_refused_at_once() -> None:
    """A tracking URI MLflow's client would accept but that is not a server (`databricks`,
    a path) is refused before any request, saying what to set."""
    with pytest.raises(RegistryError, match="RUNBOOK_MLFLOW_URL 'databricks' is not an http"):
        MlflowRegistry(MlflowConfig(url="databricks"))


def test_settings_read_the_mlflow_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """RUNBOOK_MLFLOW_URL, _TOKEN, _USER and _TIMEOUT_S configure the registry; the token is a
    known secret, so redaction masks it everywhere."""
    monkeypatch.setenv("RUNBOOK_MLFLOW_URL", "http://mlflow.internal:5000")
    monkeypatch.setenv("RUNBOOK_MLFLOW_TOKEN", TOKEN)
    monkeypatch.setenv("RUNBOOK_MLFLOW_USER", "runbook-bot")
    monkeypatch.setenv("RUNBOOK_MLFLOW_TIMEOUT_S", "4")
    settings = Settings()
    config = settings.mlflow()
    assert config is not None
    assert (config.url, config.user, config.timeout_s) == (
        "http://mlflow.internal:5000",
        "runbook-bot",
        4,
    )
    assert TOKEN in settings.known_secrets()
    assert TOKEN not in repr(settings)


def test_a_token_without_a_url_configures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without RUNBOOK_MLFLOW_URL there is no registry, whatever else is set."""
    monkeypatch.delenv("RUNBOOK_MLFLOW_URL", raising=False)
    monkeypatch.setenv("RUNBOOK_MLFLOW_TOKEN", TOKEN)
    assert Settings().mlflow() is None


def test_doctor_checks_the_registry(mlflow_server: MlflowServer, home: Path) -> None:
    """`runbook doctor` says which MLflow answers, with the token kept out of its output."""
    env = cli_env(home, RUNBOOK_MLFLOW_URL=mlflow_server.url, RUNBOOK_MLFLOW_TOKEN=TOKEN)
    doctor = subprocess.run(
        [*RUNBOOK_CLI, "doctor"], env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    [line] = [text for text in doctor.stdout.splitlines() if text.startswith("models")]
    assert line.startswith("models    ok: MLflow ") and line.endswith(f" at {mlflow_server.url}")
    assert "(version unknown)" not in line
    assert TOKEN not in doctor.stdout + doctor.stderr


def test_doctor_fails_on_an_unreachable_registry(home: Path) -> None:
    """A registry that does not answer makes doctor exit 1, saying where it looked."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = cli_env(home, RUNBOOK_MLFLOW_URL=url, RUNBOOK_MLFLOW_TIMEOUT_S="2")
    doctor = subprocess.run(
        [*RUNBOOK_CLI, "doctor"], env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT
    )
    assert doctor.returncode == 1
    assert f"models    FAILED: MLflow at {url} is unreachable" in doctor.stdout
