"""How a step's writes to Jira are found again: the map's name for them and the tag Jira keeps.

Jira has no idempotency key (pycontribs/jira#1484), so what a step made carries a tag derived
from its dedupe key: a label on issues, a marker line on comments, the globalId of remote links.
"""

from __future__ import annotations

import hashlib

from integrations.jira import TicketSystemError

SYSTEM = "jira"
"""The idempotency map's name for what this backend made."""


class OutcomeUnknown(TicketSystemError):
    """A write went unanswered and what it would have made was not found (yet)."""


class NothingMade(TicketSystemError):
    """Jira refused the request and did nothing: a 4xx answer, or 429/503 past our patience."""


def dedupe_tag(dedupe_key: str) -> str:
    """The label (and marker) naming what one step made: `rb-` + 16 hex digits of sha256."""
    return "rb-" + hashlib.sha256(dedupe_key.encode()).hexdigest()[:16]
