"""The embedded backends live as files in the engine home."""

from __future__ import annotations

from pathlib import Path

from flows.contract.ports import NewTicket
from integrations.backends import local_backends


def test_local_backends_write_under_home(tmp_path: Path) -> None:
    """Tickets go to home/tickets.db and chat to home/outbox.jsonl."""
    home = tmp_path / "home"
    backends = local_backends(home, echo=None)
    backends.tickets.create_issue(NewTicket(project="SEC", summary="x"), "k")
    backends.chat.post("#ops", "x", "k")
    assert (home / "tickets.db").is_file() and (home / "outbox.jsonl").is_file()
