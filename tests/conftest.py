"""Shared fixtures: one real local Prefect server per test session, and isolated engine homes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect reads its home at import: keep test runs out of the user's ~/.prefect.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="runbook-tests-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect API server (the engine's own local-server mode) shared by the session."""
    from flows.prefect.local_server import start_server, stop_server

    home = tmp_path_factory.mktemp("prefect-server")
    info = start_server(home)
    os.environ["PREFECT_API_URL"] = info.url
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: info.url}):
        yield info.url
        drain_prefect_workers()
    os.environ.pop("PREFECT_API_URL", None)
    stop_server(home)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty engine home (RUNBOOK_HOME) for one test."""
    folder = tmp_path / "home"
    monkeypatch.setenv("RUNBOOK_HOME", str(folder))
    return folder


def drain_prefect_workers() -> None:
    """Flush Prefect's background log and event workers so no connection outlives the server."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(RuntimeError):  # never started
        APILogWorker.drain_all()
    EventsWorker.drain_all()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the Prefect server `prefect`, so `-m "not prefect"` skips them."""
    for item in items:
        if "prefect_api" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.prefect)
