"""Values too long for a backend, cut to fit with a visible marker instead of failing the step.

Lengths are counted in UTF-16 code units, as Jira counts them (Java strings: an emoji is two).
That is never fewer than the characters a person sees, so a value cut to fit here fits Slack's
character limits too. A cut falls between two code points, never inside one.
"""

from __future__ import annotations

MARKER = "… [truncated]"
"""What a cut value ends with, so a reader knows that more was there."""


def length(text: str) -> int:
    """The length of `text` as Jira and Slack count it (UTF-16 code units)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def fit(text: str, limit: int, marker: str = MARKER) -> str:
    """`text` as it is when it fits in `limit`; else as much of its start as fits with `marker`."""
    if length(text) <= limit:
        return text
    room, used, kept = limit - length(marker), 0, 0
    for char in text:
        used += 2 if ord(char) > 0xFFFF else 1
        if used > room:
            break
        kept += 1
    return text[:kept].rstrip() + marker
