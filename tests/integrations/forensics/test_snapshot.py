"""The `forensics.snapshot` action against a real ledger, real files, processes and HTTP."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flows.contract.actions import ActionContext
from flows.errors import StepFailed
from flows.evidence.ledger import Ledger
from flows.evidence.records import RunbookRef
from flows.evidence.redact import Redactor
from flows.evidence.verify import read_records
from integrations.backends import local_backends
from integrations.forensics.actions import SnapshotArgs, snapshot

CANARY = "canary-5e1d2b7f"
HEADER_CANARY = "hdr-canary-9a8b7c6d"

Snapshot = Callable[[list[dict[str, Any]]], dict[str, Any]]


class Handler(BaseHTTPRequestHandler):
    """Answers every GET with JSON echoing the request headers, and sets a cookie."""

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]
        body = json.dumps({"path": self.path, "seen": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", f"session={HEADER_CANARY}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A real HTTP server on 127.0.0.1 (port chosen by the OS) and the headers it received."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.seen  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """The incident's real evidence ledger in tmp_path, redacting the canary like the engine."""
    ref = RunbookRef(id="breach", version=1, sha256="0" * 64)
    with Ledger(tmp_path, "inc-1", ref, Redactor([CANARY])) as led:
        yield led


@pytest.fixture
def run_snapshot(tmp_path: Path, ledger: Ledger) -> Snapshot:
    """Run `forensics.snapshot` with these collectors as one step of incident inc-1."""
    backends = local_backends(tmp_path / "backends", echo=lambda line: None)
    redactor = Redactor([CANARY])
    context = ActionContext(
        incident="inc-1",
        runbook="breach",
        step="snap",
        tickets=backends.tickets,
        chat=backends.chat,
        evidence=ledger,
        home=tmp_path,
        redact=lambda text: redactor.redact(text)[0],
        evidence_dir=tmp_path,
    )

    def run(collectors: list[dict[str, Any]]) -> dict[str, Any]:
        args = SnapshotArgs.model_validate({"collectors": collectors, "label": "leak"})
        return snapshot(args, context)

    return run


def stored_bytes(tmp_path: Path) -> bytes:
    """Every stored artifact's bytes, concatenated."""
    return b"".join(p.read_bytes() for p in (tmp_path / "artifacts").rglob("*") if p.is_file())


def test_custody_record_for_each_artifact(tmp_path: Path, run_snapshot: Snapshot) -> None:
    """Each stored artifact gets an `artifact.collected` record with who, what, where and when."""
    log = tmp_path / "app.log"
    log.write_text("one\ntwo\n")
    out = run_snapshot([{"type": "file", "paths": [str(log)]}])
    [record] = [r for r in read_records(tmp_path) if r.event == "artifact.collected"]
    [artifact] = out["artifacts"]
    assert record.step == "snap" and record.actor == "engine"
    data = record.data
    assert data["collector"] == "file" and data["args"]["paths"] == [str(log)]
    assert data["pid"] == os.getpid() and data["host"] and data["user"]
    assert data["started_at"] <= data["finished_at"]
    assert (data["sha256"], data["size"], data["path"]) == (
        artifact["sha256"],
        artifact["size"],
        artifact["path"],
    )
    assert data["redactions"] == 0 and data["label"] == "leak"
    assert (tmp_path / artifact["path"]).read_bytes() == b"one\ntwo\n"


def test_canary_in_a_file_never_reaches_artifact_or_ledger(
    tmp_path: Path, run_snapshot: Snapshot
) -> None:
    """A known secret inside a collected file is absent from the stored bytes and the ledger."""
    secret_file = tmp_path / "config.env"
    secret_file.write_text(f"DB_HOST=db\nDB_PASS={CANARY}\n")
    out = run_snapshot([{"type": "file", "paths": [str(secret_file)]}])
    assert out["redactions"] == 1
    assert CANARY.encode() not in stored_bytes(tmp_path)
    assert CANARY.encode() not in (tmp_path / "ledger.jsonl").read_bytes()


def test_canary_in_command_output_and_args_is_redacted(
    tmp_path: Path, run_snapshot: Snapshot
) -> None:
    """A secret a command prints, and one in its argv, reach neither artifact nor ledger."""
    out = run_snapshot([{"type": "command", "argv": ["echo", f"leaked {CANARY}"]}])
    assert out["redactions"] == 1
    assert stored_bytes(tmp_path) == b"leaked [REDACTED]\n"
    assert CANARY.encode() not in (tmp_path / "ledger.jsonl").read_bytes()
    assert out["artifacts"][0]["name"] == "echo leaked [REDACTED]"


def test_http_credentials_never_stored(
    tmp_path: Path,
    run_snapshot: Snapshot,
    server: tuple[str, list[dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A header secret read from the environment is sent, but masked wherever it would be kept."""
    base_url, seen = server
    monkeypatch.setenv("STATUS_AUTH", f"Token {HEADER_CANARY}")
    spec = {
        "type": "http",
        "url": f"{base_url}/status",
        "headers": {"Accept": "application/json"},
        "header_secrets": {"X-Status-Auth": "STATUS_AUTH"},
    }
    out = run_snapshot([spec])
    [artifact] = out["artifacts"]
    document = json.loads((tmp_path / artifact["path"]).read_text())
    assert seen[0]["X-Status-Auth"] == f"Token {HEADER_CANARY}"
    assert document["status"] == 200 and '"X-Status-Auth": "[REDACTED]"' in document["body"]
    assert ["set-cookie", "[REDACTED]"] in document["headers"]
    assert HEADER_CANARY.encode() not in stored_bytes(tmp_path)
    assert HEADER_CANARY.encode() not in (tmp_path / "ledger.jsonl").read_bytes()


def test_failing_collector_does_not_stop_the_others(tmp_path: Path, run_snapshot: Snapshot) -> None:
    """A collector that fails is reported and recorded; the collectors after it still run."""
    out = run_snapshot(
        [
            {"type": "command", "argv": ["/no/such/program"]},
            {"type": "log_tail", "path": str(tmp_path / "missing.log")},
            {"type": "command", "argv": [sys.executable, "-c", "print('still here')"]},
        ]
    )
    assert [f["collector"] for f in out["failures"]] == ["command", "log_tail"]
    assert "command not found" in out["failures"][0]["error"]
    assert [a["collector"] for a in out["artifacts"]] == ["command"]
    events = [r.event for r in read_records(tmp_path)]
    assert events == ["artifact.failed", "artifact.failed", "artifact.collected"]


def test_every_collector_failing_fails_the_step(tmp_path: Path, run_snapshot: Snapshot) -> None:
    """A snapshot that stored nothing at all fails the step, naming each failure."""
    with pytest.raises(StepFailed, match="no file matches"):
        run_snapshot([{"type": "file", "paths": [str(tmp_path / "none-*.log")]}])


def test_artifacts_are_read_only(tmp_path: Path, run_snapshot: Snapshot) -> None:
    """Every artifact the snapshot stored is read-only."""
    out = run_snapshot([{"type": "system"}, {"type": "command", "argv": ["echo", "hi"]}])
    for artifact in out["artifacts"]:
        assert (tmp_path / artifact["path"]).stat().st_mode & 0o777 == 0o444


def test_same_content_twice_is_one_artifact(tmp_path: Path, run_snapshot: Snapshot) -> None:
    """Two collectors gathering identical content share one stored file and one hash."""
    out = run_snapshot(
        [{"type": "command", "argv": ["echo", "x"]}, {"type": "command", "argv": ["echo", "x"]}]
    )
    first, second = out["artifacts"]
    assert first["path"] == second["path"]
    assert len([p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]) == 1


def test_unknown_collector_type_is_rejected() -> None:
    """A misspelt collector type fails validation before anything runs."""
    with pytest.raises(ValueError, match="union_tag_invalid"):
        SnapshotArgs.model_validate({"collectors": [{"type": "files", "paths": ["x"]}]})


def test_collector_spec_forbids_unknown_keys() -> None:
    """A misspelt key in a collector spec is an error."""
    with pytest.raises(ValueError, match="extra_forbidden"):
        SnapshotArgs.model_validate({"collectors": [{"type": "command", "argv": ["x"], "tmo": 1}]})
