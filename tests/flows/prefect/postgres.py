"""A throwaway PostgreSQL cluster (Debian's binaries) for a Prefect server to keep its state in."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

NEEDED = ("initdb", "pg_ctl", "createdb")


def _newest_binaries() -> Path:
    """Debian keeps each major version's server binaries apart; Prefect needs 14.9 or later."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    found.sort(key=lambda path: int(path.parent.name))
    return found[-1] if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _newest_binaries()


def postgres_missing() -> str | None:
    """Why a cluster cannot be made here, or None."""
    if all((PG_BIN / name).exists() for name in NEEDED) and int(PG_BIN.parent.name) >= 14:
        return None
    return (
        "PostgreSQL 14 or later is not installed under /usr/lib/postgresql (Debian: apt-get"
        " install postgresql); the scale-out test needs a real PostgreSQL for Prefect"
    )


@contextlib.contextmanager
def postgres_cluster(folder: Path) -> Iterator[str]:
    """A fresh cluster on a free loopback port, trusting local connections, with a `prefect`
    database; yields Prefect's connection URL for it (asyncpg). Stopped and removed after."""
    # initdb refuses to run as root: then the cluster belongs to the `postgres` account, in a
    # folder it can reach (pytest's own temporary folders are root's alone).
    user = "postgres" if os.geteuid() == 0 else None
    if user is not None:
        folder = Path(tempfile.mkdtemp(prefix="runbook-pg-"))
        account = pwd.getpwnam(user)
        os.chown(folder, account.pw_uid, account.pw_gid)
    data = folder / "data"
    port = _free_port()

    def pg(*args: str) -> None:
        subprocess.run(
            args, check=True, capture_output=True, user=user, cwd=folder, stdin=subprocess.DEVNULL
        )

    pg(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "runbook", "--no-sync")
    options = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = str(folder / "log")
    pg(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start")
    try:
        pg(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "runbook", "prefect")
        yield f"postgresql+asyncpg://runbook@127.0.0.1:{port}/prefect"
    finally:
        pg(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        if user is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
