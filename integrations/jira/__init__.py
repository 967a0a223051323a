"""Tickets: the Jira backend, the embedded local ticket store, and the `jira.*` actions.

Every ticket backend raises `TicketNotFound` for an unknown key, so actions handle one error.
"""


class TicketNotFound(LookupError):
    """The ticket system has no ticket with this key."""
