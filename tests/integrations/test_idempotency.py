"""The local idempotency map: first value wins, survives reopening, separates systems; intents."""

from __future__ import annotations

from pathlib import Path

from integrations.idempotency import IdempotencyMap


def test_first_value_wins_and_survives_reopening(tmp_path: Path) -> None:
    """A second put for the same key is ignored, and a new map on the file sees the first."""
    made = IdempotencyMap(tmp_path / "made.db")
    made.put("jira", "inc:ticket", {"key": "SEC-1"})
    made.put("jira", "inc:ticket", {"key": "SEC-2"})
    assert IdempotencyMap(tmp_path / "made.db").get("jira", "inc:ticket") == {"key": "SEC-1"}


def test_systems_do_not_share_keys(tmp_path: Path) -> None:
    """The same key under two systems maps to two values; unknown keys map to None."""
    made = IdempotencyMap(tmp_path / "made.db")
    made.put("jira", "k", {"key": "SEC-1"})
    made.put("slack", "k", {"ts": "1.2"})
    assert made.get("slack", "k") == {"ts": "1.2"}
    assert made.get("jira", "other") is None


def test_under_lists_keys_with_a_prefix_oldest_first(tmp_path: Path) -> None:
    """`under` returns one system's entries whose key starts with the prefix, in insert order."""
    made = IdempotencyMap(tmp_path / "made.db")
    made.put("slack", "inc_1:channel", {"channel": "C1"})
    made.put("slack", "incX1:channel", {"channel": "C9"})
    made.put("slack", "inc_1:war-room", {"channel": "C2"})
    made.put("jira", "inc_1:ticket", {"key": "SEC-1"})
    assert made.under("slack", "inc_1:") == [
        ("inc_1:channel", {"channel": "C1"}),
        ("inc_1:war-room", {"channel": "C2"}),
    ]


def test_intent_survives_reopening_until_its_result_is_put(tmp_path: Path) -> None:
    """An intent is read back by a new map on the file, updated in place, and settled by put."""
    made = IdempotencyMap(tmp_path / "made.db")
    made.intend("jira", "issue:inc:ticket", {"label": "rb-1", "sent_at": 1.0})
    made.intend("jira", "issue:inc:ticket", {"label": "rb-1", "failure": "HTTP 500"})
    again = IdempotencyMap(tmp_path / "made.db")
    assert again.intent("jira", "issue:inc:ticket") == {"label": "rb-1", "failure": "HTTP 500"}
    again.put("jira", "issue:inc:ticket", {"key": "SEC-1"})
    assert made.intent("jira", "issue:inc:ticket") is None
    assert made.get("jira", "issue:inc:ticket") == {"key": "SEC-1"}


def test_withdrawn_intent_and_forgotten_result_are_gone(tmp_path: Path) -> None:
    """withdraw drops an intent, forget drops a result; other keys and systems keep theirs."""
    made = IdempotencyMap(tmp_path / "made.db")
    made.intend("slack", "inc:channel", {"name": "inc-api"})
    made.intend("jira", "inc:channel", {"label": "rb-2"})
    made.put("jira", "inc:ticket", {"key": "SEC-1"})
    made.withdraw("slack", "inc:channel")
    made.forget("jira", "inc:ticket")
    assert made.intent("slack", "inc:channel") is None
    assert made.intent("jira", "inc:channel") == {"label": "rb-2"}
    assert made.get("jira", "inc:ticket") is None
