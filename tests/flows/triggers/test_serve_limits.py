"""`runbook serve` under odd requests, as users run it: an oversized upload leaves its memory
alone, an upload cut off midway is one log line, and a busy port is a clear refusal."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.serve_process import free_port, peak_rss_bytes, running_server
from tests.support import FIXTURES, run_cli

LIBRARY = str(FIXTURES / "library")
TOKEN = "hook-token-5d2c"
SECRETS = {
    "RUNBOOK_WEBHOOK_TOKEN": TOKEN,
    "RUNBOOK_PAGERDUTY_SECRET": "pd-secret-77",
    # No jobs run in these tests: Prefect's per-process server is never started.
    "RUNBOOK_PREFECT": "ephemeral",
}
MIB = 1 << 20


def test_a_chunked_64_mib_body_leaves_the_servers_memory_alone(home: Path) -> None:
    """64 MiB sent chunked without a token, or with a bad signature, is refused while the
    server's peak memory grows by less than 16 MiB, and the sender is stopped early."""
    with running_server(home, "--runbooks", LIBRARY, **SECRETS) as served:
        pid = served.process.pid
        with httpx.Client(base_url=served.url, timeout=60) as client:
            for _ in range(3):  # warm: whatever answering loads, it has loaded
                client.post("/alerts/pagerduty", content=b"{}")
            before = peak_rss_bytes(pid)
            answers = []
            for path, headers in [
                ("/alerts/alertmanager", {}),
                ("/alerts/pagerduty", {"X-PagerDuty-Signature": "v1=00"}),
            ]:
                sent = [0]
                answer = client.post(path, content=_mebibytes(64, sent), headers=headers)
                answers.append((answer.status_code, sent[0]))
            grown = peak_rss_bytes(pid) - before
    assert grown < 16 * MIB, f"peak memory grew by {grown / MIB:.1f} MiB"
    assert [status for status, _ in answers] == [401, 413]
    assert all(sent < 64 for _, sent in answers), answers


def test_an_upload_cut_off_midway_is_one_log_line_without_a_traceback(home: Path) -> None:
    """A sender that hangs up in the middle of its body is logged as one line, never a
    traceback, and the server goes on answering."""
    with running_server(home, "--runbooks", LIBRARY, **SECRETS) as served:
        port = int(served.url.rsplit(":", 1)[1])
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port)) as connection:
                connection.sendall(
                    b"POST /alerts/generic HTTP/1.1\r\nHost: runbook\r\n"
                    + f"Authorization: Bearer {TOKEN}\r\n".encode()
                    + b"Content-Length: 100000\r\n\r\n"
                    + b'{"id": "cut-'
                )
        time.sleep(1)
        assert httpx.get(f"{served.url}/metrics", timeout=5).status_code == 200
    assert "Traceback" not in served.stderr, served.stderr
    gone = [line for line in served.stderr.splitlines() if "the sender went away" in line]
    assert len(gone) == 3, served.stderr


def test_a_busy_port_is_refused_with_what_to_do_and_not_the_waiting_code(home: Path) -> None:
    """On a port another process listens on, serve exits 2 at once, naming the address and
    --port, before it starts Prefect or a worker process; 3 would mean "waiting at a gate"."""
    port = free_port()
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        started = time.monotonic()
        result = run_cli(home, "serve", "--port", str(port), "--runbooks", LIBRARY)
        took = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "prefect").exists()  # no local Prefect server was started for it
    assert took < 30


def _mebibytes(count: int, sent: list[int]) -> Iterator[bytes]:
    for _ in range(count):
        sent[0] += 1
        yield b"x" * MIB
