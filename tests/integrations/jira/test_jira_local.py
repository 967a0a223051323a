"""The local ticket store: numbering, idempotency, comments, transitions, persistence."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from flows.contract.ports import NewTicket
from integrations.jira import TicketNotFound
from integrations.jira.local import LocalTicketStore


@pytest.fixture
def store(tmp_path: Path) -> LocalTicketStore:
    return LocalTicketStore(tmp_path / "tickets.db")


def new(project: str = "SEC", summary: str = "Credential leak on api") -> NewTicket:
    return NewTicket(project=project, summary=summary, incident="inc-1")


def test_keys_count_per_project(store: LocalTicketStore) -> None:
    """Each project numbers its tickets from 1."""
    keys = [
        store.create_issue(new("SEC"), "a").key,
        store.create_issue(new("SEC"), "b").key,
        store.create_issue(new("OPS"), "c").key,
    ]
    assert keys == ["SEC-1", "SEC-2", "OPS-1"]


def test_new_ticket_is_open_with_url(store: LocalTicketStore) -> None:
    """A new ticket is Open and its URL is the base URL plus its key."""
    ticket = store.create_issue(new(), "a")
    assert (ticket.status, ticket.url) == ("Open", "local://tickets/SEC-1")


def test_same_dedupe_key_returns_the_first_ticket(store: LocalTicketStore) -> None:
    """Creating twice under one dedupe key makes one ticket and returns it both times."""
    first = store.create_issue(new(summary="first"), "inc-1:ticket")
    second = store.create_issue(new(summary="second"), "inc-1:ticket")
    assert second == first
    assert [t.key for t in store.list_tickets()] == ["SEC-1"]


def test_concurrent_creates_with_one_key_make_one_ticket(store: LocalTicketStore) -> None:
    """Threads racing on one dedupe key all get the same single ticket."""
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: store.create_issue(new(), "inc-1:ticket").key, range(16)))
    assert keys == {"SEC-1"}
    assert len(store.list_tickets()) == 1


def test_concurrent_creates_get_distinct_keys(store: LocalTicketStore) -> None:
    """Threads creating different tickets never share a number."""
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda i: store.create_issue(new(), f"k{i}").key, range(16)))
    assert sorted(keys) == sorted(f"SEC-{n}" for n in range(1, 17))


def test_list_tickets_carries_incident_and_project(store: LocalTicketStore) -> None:
    """Listed tickets say which incident and project they belong to."""
    store.create_issue(new(), "a")
    [ticket] = store.list_tickets()
    assert (ticket.incident, ticket.project, ticket.summary) == (
        "inc-1",
        "SEC",
        "Credential leak on api",
    )


def test_tickets_survive_reopening(tmp_path: Path) -> None:
    """A second store on the same file sees the first one's tickets and keeps numbering."""
    LocalTicketStore(tmp_path / "t.db").create_issue(new(), "a")
    again = LocalTicketStore(tmp_path / "t.db")
    assert again.create_issue(new(), "b").key == "SEC-2"


def test_comment_is_added_once_per_dedupe_key(store: LocalTicketStore) -> None:
    """Commenting twice under one dedupe key adds one comment and returns its id twice."""
    store.create_issue(new(), "a")
    first = store.comment("SEC-1", "contained", "inc-1:note")
    second = store.comment("SEC-1", "contained", "inc-1:note")
    assert first == second
    assert [c.body for c in store.comments("SEC-1")] == ["contained"]


def test_comment_on_unknown_ticket_raises(store: LocalTicketStore) -> None:
    """Commenting on a key the store does not have raises TicketNotFound."""
    with pytest.raises(TicketNotFound, match="SEC-9"):
        store.comment("SEC-9", "hello", "k")


def test_transition_changes_status(store: LocalTicketStore) -> None:
    """A transition moves the ticket to the new status, as later reads show."""
    store.create_issue(new(), "a")
    assert store.transition("SEC-1", "Done").status == "Done"
    assert store.list_tickets()[0].status == "Done"


def test_transition_to_current_status_is_a_no_op(store: LocalTicketStore) -> None:
    """Moving a ticket to the status it has returns it unchanged."""
    created = store.create_issue(new(), "a")
    assert store.transition("SEC-1", "Open") == created


def test_transition_of_unknown_ticket_raises(store: LocalTicketStore) -> None:
    """Transitioning a key the store does not have raises TicketNotFound."""
    with pytest.raises(TicketNotFound):
        store.transition("SEC-9", "Done")


def test_attach_copies_the_file_beside_the_store(store: LocalTicketStore, tmp_path: Path) -> None:
    """An attachment is copied into attachments/<key>/ next to the database."""
    store.create_issue(new(), "a")
    source = tmp_path / "report.txt"
    source.write_text("findings")
    store.attach("SEC-1", source, "inc-1:attach")
    [stored] = store.attachments("SEC-1")
    assert stored.path.parent == tmp_path / "attachments" / "SEC-1"
    assert (stored.filename, stored.path.read_text()) == ("report.txt", "findings")


def test_attach_is_once_per_dedupe_key(store: LocalTicketStore, tmp_path: Path) -> None:
    """Attaching twice under one key keeps one attachment and one copy."""
    store.create_issue(new(), "a")
    source = tmp_path / "report.txt"
    source.write_text("findings")
    first = store.attach("SEC-1", source, "inc-1:attach", filename="r.txt")
    assert store.attach("SEC-1", source, "inc-1:attach", filename="r.txt") == first
    assert len(store.attachments("SEC-1")) == 1
    assert len(list((tmp_path / "attachments" / "SEC-1").iterdir())) == 1


def test_attach_to_unknown_ticket_raises(store: LocalTicketStore, tmp_path: Path) -> None:
    """Attaching to a key the store does not have raises TicketNotFound."""
    source = tmp_path / "report.txt"
    source.write_text("findings")
    with pytest.raises(TicketNotFound):
        store.attach("SEC-9", source, "k")


def test_link_is_once_per_dedupe_key(store: LocalTicketStore) -> None:
    """Linking twice under one key keeps the first link."""
    store.create_issue(new(), "a")
    first = store.link("SEC-1", "https://status.example", "Status page", "inc-1:link")
    assert store.link("SEC-1", "https://other.example", "Other", "inc-1:link") == first
    assert [(k.url, k.title) for k in store.links("SEC-1")] == [
        ("https://status.example", "Status page")
    ]


def test_check_names_the_file(store: LocalTicketStore, tmp_path: Path) -> None:
    """check() says where the store is."""
    assert store.check() == f"local ticket store at {tmp_path / 'tickets.db'}"
