"""Jira's wiki markup (the text of descriptions and comments in REST API v2), made inert.

Jira reads markup from punctuation almost anywhere: `[~user]` mentions, `[label|url]` links,
`!url!` images fetched from anywhere, `{color}` and `{code}` macros, `*bold*`, `|cell|` tables,
`h1.` headings and `*`/`#`/`-` lists at the start of a line. A backslash before punctuation makes
it a plain character; a backslash itself cannot be escaped that way, so it is written as the
entity `&#92;`, which Jira shows as `\\`.
"""

from __future__ import annotations

import re

SPECIAL = frozenset("{}[]|*_-+^~?!#")
"""Characters Jira may read as markup, each written with a backslash before it."""
_LINE_MARKUP = re.compile(r"^(\s*(?:h[1-6]|bq))\.", re.MULTILINE)
"""Headings and block quotes start a line with letters, which need the escape on their dot."""


def escape(text: str) -> str:
    """Text that Jira shows as it is: no mention, link, image, macro or formatting acts."""
    escaped = "".join(
        "&#92;" if char == "\\" else f"\\{char}" if char in SPECIAL else char for char in text
    )
    return _LINE_MARKUP.sub(r"\1\\.", escaped)
