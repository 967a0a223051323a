"""The `processes`, `system` and `environment` collectors: the state of this host, as JSON."""

from __future__ import annotations

import os
import platform
import socket
import sys
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Literal

import psutil
from pydantic import BaseModel, Field

from flows.evidence.redact import REDACTED, is_secret_key
from integrations.forensics.collectors.base import SPEC_CONFIG, Collected, Kit, Pieces


class ProcessesSpec(BaseModel):
    """List running processes and their network connections."""

    model_config = SPEC_CONFIG

    type: Literal["processes"] = Field(description="Collector kind: `processes`.")


class SystemSpec(BaseModel):
    """Record disks, memory, load, uptime, logged-in users and network interfaces."""

    model_config = SPEC_CONFIG

    type: Literal["system"] = Field(description="Collector kind: `system`.")


class EnvironmentSpec(BaseModel):
    """Record host, OS, Python, installed packages and chosen environment variables."""

    model_config = SPEC_CONFIG

    type: Literal["environment"] = Field(description="Collector kind: `environment`.")
    allow: list[str] = Field(
        default_factory=list,
        description="Environment variables recorded (values redacted); no others are.",
    )


def collect_processes(spec: ProcessesSpec, kit: Kit) -> Pieces:
    """Store every visible process and, where permitted, every inet connection."""
    fields = ["pid", "ppid", "username", "name", "cmdline", "create_time", "status"]
    processes = []
    masked = 0
    for process in psutil.process_iter(fields):
        info = dict(process.info)
        info["user"] = info.pop("username")
        info["create_time"] = _iso(info["create_time"])
        info["cmdline"], hidden = _masked_cmdline(info["cmdline"] or [])
        masked += hidden
        processes.append(info)
    try:
        connections: list[dict[str, Any]] | str = [
            {
                "pid": c.pid,
                "type": c.type.name,
                "local": _address(c.laddr),
                "remote": _address(c.raddr),
                "status": c.status,
            }
            for c in psutil.net_connections(kind="inet")
        ]
    except psutil.AccessDenied:
        # Other users' sockets need privileges; this process's own are still worth keeping.
        connections = "access denied: run the engine with more privileges to list connections"
    document = {"processes": processes, "connections": connections}
    yield Collected("processes.json", kit.put_json(document, masked), {"processes": len(processes)})


def collect_system(spec: SystemSpec, kit: Kit) -> Pieces:
    """Store disk usage, memory, load, boot time, logged-in users and network interfaces."""
    disks = []
    for part in psutil.disk_partitions(all=False):
        try:
            usage = psutil.disk_usage(part.mountpoint)._asdict()
        except OSError as err:
            usage = {"error": err.strerror or str(err)}
        disks.append({"device": part.device, "mountpoint": part.mountpoint} | usage)
    document = {
        "host": socket.gethostname(),
        "disks": disks,
        "memory": psutil.virtual_memory()._asdict(),
        "swap": psutil.swap_memory()._asdict(),
        "load": list(os.getloadavg()),
        "cpus": psutil.cpu_count(),
        "boot_time": _iso(psutil.boot_time()),
        "users": [
            {"name": u.name, "terminal": u.terminal, "host": u.host, "started": _iso(u.started)}
            for u in psutil.users()
        ],
        "interfaces": {
            name: [{"family": a.family.name, "address": a.address} for a in addresses]
            for name, addresses in psutil.net_if_addrs().items()
        },
    }
    yield Collected("system.json", kit.put_json(document))


def collect_environment(spec: EnvironmentSpec, kit: Kit) -> Pieces:
    """Store host, OS, Python, package versions and the allowed environment variables."""
    packages = {
        dist.metadata["Name"]: dist.version
        for dist in metadata.distributions()
        if dist.metadata["Name"]
    }
    document = {
        "host": socket.gethostname(),
        "os": platform.platform(),
        "python": sys.version,
        "executable": sys.executable,
        "packages": dict(sorted(packages.items(), key=lambda item: item[0].lower())),
        "environment": {name: os.environ.get(name) for name in spec.allow},
    }
    yield Collected("environment.json", kit.put_json(document))


def _masked_cmdline(argv: list[str]) -> tuple[list[str], int]:
    """The arguments with the value after a secret-named flag (`--token abc`) masked."""
    out = list(argv)
    hidden = 0
    for index, arg in enumerate(argv[:-1]):
        if arg.startswith("-") and "=" not in arg and is_secret_key(arg.lstrip("-")):
            out[index + 1] = REDACTED
            hidden += 1
    return out, hidden


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def _address(address: Any) -> str | None:
    return f"{address.ip}:{address.port}" if address else None
