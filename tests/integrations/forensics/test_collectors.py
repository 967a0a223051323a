"""Each collector on its own: what it gathers from real files, processes and this host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from flows.evidence.redact import Redactor
from integrations.forensics.actions import COLLECTORS, SnapshotArgs
from integrations.forensics.collectors.base import Collected, Kit, Missed, Piece
from integrations.forensics.store import ArtifactStore


def gather(tmp_path: Path, spec: dict[str, Any]) -> list[Piece]:
    """Run one collector spec into a store under tmp_path with the engine's pattern redaction."""
    [model] = SnapshotArgs.model_validate({"collectors": [spec]}).collectors
    redactor = Redactor()
    kit = Kit(ArtifactStore(tmp_path / "evidence"), lambda text: redactor.redact(text)[0])
    return list(COLLECTORS[spec["type"]](model, kit))


def content(piece: Piece) -> bytes:
    """The stored bytes of a collected piece."""
    assert isinstance(piece, Collected)
    return piece.artifact.path.read_bytes()


def document(piece: Piece) -> Any:
    """The stored JSON document of a collected piece."""
    return json.loads(content(piece))


def test_command_keeps_stdout_and_stderr(tmp_path: Path) -> None:
    """Both streams of the program are stored, with its exit code in the facts."""
    code = (
        "import sys; print('out'); sys.stdout.flush(); print('err', file=sys.stderr); sys.exit(3)"
    )
    [piece] = gather(tmp_path, {"type": "command", "argv": [sys.executable, "-c", code]})
    assert content(piece) == b"out\nerr\n"
    assert isinstance(piece, Collected) and piece.facts["exit_code"] == 3


def test_command_output_is_capped(tmp_path: Path) -> None:
    """Output past max_bytes is dropped and the facts say how much there was."""
    code = "print('x' * 5000)"
    spec = {"type": "command", "argv": [sys.executable, "-c", code], "max_bytes": 100}
    [piece] = gather(tmp_path, spec)
    assert content(piece) == b"x" * 100
    assert isinstance(piece, Collected) and piece.facts["output_bytes"] == 5001


def test_command_does_not_see_runbook_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's RUNBOOK_* variables are not passed to the program."""
    monkeypatch.setenv("RUNBOOK_JIRA_TOKEN", "engine-only")
    monkeypatch.setenv("PLAIN_VAR", "visible")
    code = "import os; print([k for k in ('RUNBOOK_JIRA_TOKEN', 'PLAIN_VAR') if k in os.environ])"
    [piece] = gather(tmp_path, {"type": "command", "argv": [sys.executable, "-c", code]})
    assert content(piece) == b"['PLAIN_VAR']\n"


def test_command_past_its_timeout_is_killed_and_partial_output_kept(tmp_path: Path) -> None:
    """A program running past timeout_s is killed; what it printed before is still stored."""
    code = "import time; print('before', flush=True); time.sleep(30)"
    spec = {"type": "command", "argv": [sys.executable, "-c", code], "timeout_s": 0.5}
    started = time.monotonic()
    [piece] = gather(tmp_path, spec)
    assert time.monotonic() - started < 10
    assert content(piece) == b"before\n"
    assert isinstance(piece, Collected) and piece.facts["timed_out"] is True


def test_file_copies_every_glob_match(tmp_path: Path) -> None:
    """Each regular file a glob matches is stored with its source facts."""
    (tmp_path / "logs" / "old").mkdir(parents=True)
    (tmp_path / "logs" / "a.log").write_text("a\n")
    (tmp_path / "logs" / "old" / "b.log").write_text("b\n")
    pieces = gather(tmp_path, {"type": "file", "paths": [f"{tmp_path}/logs/**/*.log"]})
    assert sorted(content(p) for p in pieces) == [b"a\n", b"b\n"]
    assert all(isinstance(p, Collected) and p.facts["source_size"] == 2 for p in pieces)


def test_file_stops_at_max_files(tmp_path: Path) -> None:
    """Matches past max_files are not copied and are reported as a miss."""
    for name in "abc":
        (tmp_path / f"{name}.txt").write_text(name)
    pieces = gather(tmp_path, {"type": "file", "paths": [f"{tmp_path}/*.txt"], "max_files": 2})
    assert [type(p) for p in pieces] == [Collected, Collected, Missed]
    assert isinstance(pieces[2], Missed) and "1 more files" in pieces[2].error


def test_file_pattern_matching_nothing_is_a_miss_and_others_are_copied(tmp_path: Path) -> None:
    """A path that matches no file is reported; the other paths are still copied."""
    (tmp_path / "ok.txt").write_text("ok")
    pieces = gather(tmp_path, {"type": "file", "paths": [f"{tmp_path}/x", f"{tmp_path}/ok.txt"]})
    assert isinstance(pieces[0], Missed) and pieces[0].error == "no file matches"
    assert content(pieces[1]) == b"ok"


def write_log(path: Path, count: int) -> None:
    """A log of `count` lines, one a minute from 10:00 UTC, every third an ERROR."""
    with path.open("w") as log:
        for n in range(count):
            level = "ERROR" if n % 3 == 0 else "INFO"
            log.write(f"2026-11-26T{10 + n // 60:02d}:{n % 60:02d}:00Z {level} event {n}\n")


def test_log_tail_keeps_the_last_lines_in_order(tmp_path: Path) -> None:
    """The latest `lines` lines are kept, oldest first, across many read blocks."""
    log = tmp_path / "app.log"
    write_log(log, 5000)
    [piece] = gather(tmp_path, {"type": "log_tail", "path": str(log), "lines": 3})
    assert content(piece).decode().splitlines() == [
        f"2026-11-26T{10 + n // 60:02d}:{n % 60:02d}:00Z {'ERROR' if n % 3 == 0 else 'INFO'} "
        f"event {n}"
        for n in (4997, 4998, 4999)
    ]


def test_log_tail_filters_by_grep_and_since(tmp_path: Path) -> None:
    """Only lines matching grep with a leading timestamp at or after `since` are kept."""
    log = tmp_path / "app.log"
    write_log(log, 120)
    spec = {
        "type": "log_tail",
        "path": str(log),
        "grep": "ERROR",
        "since": "2026-11-26T11:50:00Z",
    }
    [piece] = gather(tmp_path, spec)
    assert [line.split()[-1] for line in content(piece).decode().splitlines()] == [
        "111",
        "114",
        "117",
    ]


def test_log_tail_keeps_lines_without_timestamp(tmp_path: Path) -> None:
    """A continuation line (a traceback) without a timestamp is not dropped by `since`."""
    log = tmp_path / "app.log"
    log.write_text("2026-11-26T09:00:00Z old\n2026-11-26T12:00:00Z boom\n  at frame 1\n")
    spec = {"type": "log_tail", "path": str(log), "since": "2026-11-26T11:00:00+00:00"}
    [piece] = gather(tmp_path, spec)
    assert content(piece) == b"2026-11-26T12:00:00Z boom\n  at frame 1\n"


def test_log_tail_keeps_blank_lines_and_a_last_line_without_newline(tmp_path: Path) -> None:
    """Blank lines survive and a final unterminated line is kept."""
    log = tmp_path / "app.log"
    log.write_bytes(b"a\n\nb")
    [piece] = gather(tmp_path, {"type": "log_tail", "path": str(log)})
    assert content(piece) == b"a\n\nb\n"


def test_processes_lists_a_running_child(tmp_path: Path) -> None:
    """A process started by the test appears with its pid, parent, name and redacted cmdline."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "--token", "abc123secret"]
    )
    try:
        [piece] = gather(tmp_path, {"type": "processes"})
    finally:
        child.kill()
        child.wait()
    [entry] = [p for p in document(piece)["processes"] if p["pid"] == child.pid]
    assert entry["ppid"] == os.getpid() and entry["status"]
    assert entry["cmdline"][-2:] == ["--token", "[REDACTED]"]
    assert b"abc123secret" not in content(piece)


def test_system_records_host_state(tmp_path: Path) -> None:
    """Disks, memory, load, boot time, users and interfaces are recorded."""
    [piece] = gather(tmp_path, {"type": "system"})
    doc = document(piece)
    assert {"disks", "memory", "load", "boot_time", "users", "interfaces"} <= set(doc)
    assert doc["memory"]["total"] > 0 and "lo" in doc["interfaces"]


def test_environment_keeps_only_allowed_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only allowed variables are recorded, secret-named ones redacted; packages are listed."""
    monkeypatch.setenv("DEPLOY_ENV", "prod")
    monkeypatch.setenv("SERVICE_TOKEN", "tok-value-1234")
    monkeypatch.setenv("NOT_ALLOWED", "hidden")
    [piece] = gather(tmp_path, {"type": "environment", "allow": ["DEPLOY_ENV", "SERVICE_TOKEN"]})
    doc = document(piece)
    assert doc["environment"] == {"DEPLOY_ENV": "prod", "SERVICE_TOKEN": "[REDACTED]"}
    assert doc["packages"]["pydantic"].startswith("2.")


def test_every_collector_spec_is_described_and_strict() -> None:
    """Each collector model forbids unknown keys and describes every field."""
    [spec] = get_args(SnapshotArgs.model_fields["collectors"].annotation)
    union, _ = get_args(spec)
    models: tuple[type[BaseModel], ...] = get_args(union)
    assert {get_args(m.model_fields["type"].annotation)[0] for m in models} == set(COLLECTORS)
    for model in models:
        assert model.model_config.get("extra") == "forbid"
        assert all(f.description for f in model.model_fields.values())
