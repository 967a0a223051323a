"""Tickets: the Jira backend, the embedded local ticket store, and the `jira.*` actions.

Every ticket backend raises `TicketSystemError` with a message saying what to do, and
`TicketNotFound` for an unknown key, so actions handle two errors whatever the backend.
"""

from flows.errors import StepFailed


class TicketSystemError(StepFailed):
    """The ticket system refused or failed a call; the message says what to check or do."""


class TicketNotFound(TicketSystemError, LookupError):
    """The ticket system has no ticket with this key."""
