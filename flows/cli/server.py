"""`runbook server`: the local Prefect server the engine starts once and reuses; and `doctor`."""

from __future__ import annotations

from cyclopts import App

from flows.cli.common import EXIT_FAILED, EXIT_OK, settings
from flows.engine.settings import Settings
from flows.prefect.local_server import read_server, start_server, stop_server
from integrations.backends import select_backends

server_app = App(name="server", help="The local Prefect server the engine starts and reuses.")


@server_app.command
def start() -> int:
    """Start the local Prefect server (or report the running one)."""
    current = settings()
    info = start_server(current.home, ui=current.prefect_ui)
    print(f"local Prefect server at {info.url} (pid {info.pid})")
    return EXIT_OK


@server_app.command
def stop() -> int:
    """Stop the local Prefect server."""
    print("stopped" if stop_server(settings().home) else "no local server was running")
    return EXIT_OK


@server_app.command
def status() -> int:
    """Say whether the local Prefect server runs, and where."""
    info = read_server(settings().home)
    print(f"running at {info.url} (pid {info.pid})" if info else "not running")
    return EXIT_OK if info else EXIT_FAILED


def doctor() -> int:
    """Say which backend each integration uses and check its credentials."""
    current = settings()
    print(f"home      {current.home.resolve()}")
    server = read_server(current.home)
    if current.prefect == "local-server":
        where = f"running at {server.url}" if server else "starts on the first run"
        print(f"prefect   local server, {where}")
    else:
        print(f"prefect   {current.prefect}")
    backends = select_backends(current.home, current.jira(), current.slack(), echo=None)
    healthy = True
    for label, system in (("tickets", backends.tickets), ("chat", backends.chat)):
        try:
            print(f"{label:<9} ok: {system.check()}")
        except Exception as error:  # every failure is reported, then doctor exits 1
            healthy = False
            print(f"{label:<9} FAILED: {error}")
    healthy = _check_models(current) and healthy
    drills = f"sandboxes under {current.home / 'drills'}"
    if current.slack() is not None and current.slack_drill_channel:
        drills += f"; drills run by the server talk in Slack {current.slack_drill_channel}"
    print(f"drills    {drills}")
    return EXIT_OK if healthy else EXIT_FAILED


def _check_models(current: Settings) -> bool:
    """Print whether the model registry (MLflow) answers with the configured credentials."""
    config = current.mlflow()
    if config is None:
        print("models    not configured (RUNBOOK_MLFLOW_URL unset): mlflow.* steps fail")
        return True
    from integrations.mlflow.rest import MlflowRegistry  # loads httpx: only when configured

    try:
        with MlflowRegistry(config) as registry:
            print(f"models    ok: {registry.describe()}")
    except Exception as error:  # every failure is reported, then doctor exits 1
        print(f"models    FAILED: {error}")
        return False
    return True
