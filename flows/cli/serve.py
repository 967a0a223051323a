"""Commands that run the engine as a service: `serve` (webhooks, Slack) and `deploy` (Prefect)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from flows.cli.common import EXIT_OK, prepare_prefect, settings
from flows.triggers.shared_metrics import share_metrics

Flag = Annotated[bool, Parameter(negative="")]

# The server, Prefect and the deployments are imported inside the commands: `serve` must set
# the metrics folder before anything imports prometheus_client (Prefect does), and take its port
# before Prefect or the worker process start.


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    runbooks: Path = Path("runbooks"),
    dev: Flag = False,
    slack_socket_mode: Flag = False,
    via_deployments: Flag = False,
    allow_sqlite_prefect: Flag = False,
) -> int:
    """Serve alert webhooks and Slack commands; runs start in the background, durably queued."""
    current = settings()
    if allow_sqlite_prefect:
        current = current.model_copy(update={"allow_sqlite_prefect": True})
    share_metrics(current.home)
    from flows.triggers.serve import listen
    from flows.triggers.serve import serve as run_server

    listener = listen(host, port)
    prepare_prefect(current)
    return run_server(
        current,
        listener,
        host=host,
        runbooks_dir=runbooks,
        dev=dev,
        socket_mode=slack_socket_mode,
        via_deployments=via_deployments,
    )


def deploy(*, pool: str = "runbooks", runbooks: Path = Path("runbooks")) -> int:
    """Create (or update) a Prefect deployment per runbook on a process work pool."""
    from flows.prefect.deployments import deploy_runbook, ensure_process_pool
    from flows.triggers.server import load_library

    prepare_prefect(settings())
    library = load_library(runbooks)
    ensure_process_pool(pool)
    root = Path.cwd()
    for runbook in library:
        name = deploy_runbook(runbook.id, runbook.path, runbook.sha256, pool, root)
        print(f"deployed {name} on work pool {pool!r}")
    print(f"start workers with: prefect worker start --pool {pool}")
    return EXIT_OK
