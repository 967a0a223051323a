"""Hints for mistakes: the closest known word, and the file line of a key path."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


def suggest(
    word: str, choices: Iterable[str], *, known: str, prefix: str = "", listing: bool = False
) -> str:
    """A hint: `prefix`, the choices closest to a misspelt word, and the choices when none is
    close (or always, with `listing`)."""
    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=3)
    parts = [prefix]
    if close:
        parts.append("did you mean " + " or ".join(f"'{c}'" for c in close) + "?")
    if options and (listing or not close):
        parts.append(
            f"{known}: " + ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
        )
    return "; ".join(part for part in parts if part)


def line_of(lines: dict[str, int], loc: Sequence[str], default: int) -> int:
    """The file line of the deepest known key along `loc`, else `default`."""
    for end in range(len(loc), 0, -1):
        found = lines.get(".".join(loc[:end]))
        if found is not None:
            return found
    return default
