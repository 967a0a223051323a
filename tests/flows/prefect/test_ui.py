"""The local server's bundled Prefect UI, loaded in headless Chromium, shows the incidents."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.engine.compile import WAITING_AT_GATE
from flows.engine.runner import start_run
from flows.engine.settings import Settings
from flows.prefect.local_server import ServerInfo, start_server, stop_server
from tests.conftest import drain_prefect_workers
from tests.support import FIXTURES

pytestmark = pytest.mark.prefect


def chromium() -> str:
    """The headless browser to use, or skip the test when none is installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no chromium or chromium-browser binary on PATH (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def server_with_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """A local server started as `RUNBOOK_PREFECT_UI=true` starts it, with the UI on."""
    chromium()
    home = tmp_path_factory.mktemp("prefect-ui")
    info = start_server(home, ui=True)
    try:
        with temporary_settings(updates={PREFECT_API_URL: info.url}):
            yield info
            drain_prefect_workers()
    finally:
        stop_server(home)


def render(tmp_path: Path, url: str) -> str:
    """The DOM of `url` after Chromium ran its scripts (virtual time lets the app fetch)."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=30000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)
    return done.stdout


def title(dom: str) -> str:
    found = re.search(r"<title>([^<]*)</title>", dom)
    return found.group(1) if found else ""


def test_the_ui_talks_to_the_port_the_server_listens_on(server_with_ui: ServerInfo) -> None:
    """The UI's settings name the server's own API address, not Prefect's default port."""
    settings = httpx.get(f"{server_with_ui.url.removesuffix('/api')}/ui-settings").json()
    assert settings["api_url"] == server_with_ui.url


def test_the_ui_shows_the_incident_and_its_state(
    server_with_ui: ServerInfo, home: Path, tmp_path: Path
) -> None:
    """Chromium renders the Prefect app, not an error page: the runs list names the incident
    and its flow run page shows it waiting at its gate."""
    gated = FIXTURES / "runbooks" / "gated.md"
    settings = Settings(home=home, prefect="external")
    outcome = start_run(settings, gated, {"service": "api"}, incident_id="inc-ui-1")
    assert outcome.status == "waiting"
    ui = server_with_ui.url.removesuffix("/api")
    flow_runs = httpx.post(
        f"{server_with_ui.url}/flow_runs/filter",
        json={"flow_runs": {"name": {"any_": ["inc-ui-1"]}}},
    ).json()
    [flow_run] = flow_runs

    runs = render(tmp_path, f"{ui}/runs")
    assert title(runs) == "Runs • Prefect Server"
    assert "Can't connect to Server API" not in runs
    assert "inc-ui-1" in runs

    page = render(tmp_path, f"{ui}/runs/flow-run/{flow_run['id']}")
    assert title(page) == "Flow Run: inc-ui-1 • Prefect Server"  # the app read it from the API
    assert WAITING_AT_GATE in page
