"""Untrusted text (ledger notes, errors, names typed at a prompt) made inert for where it goes.

Markdown: every ASCII punctuation character is backslash-escaped, which CommonMark allows for
each of them (spec section 2.4), so no `#`, `[`, `](`, `<`, `|`, `*` or `` ` `` is markup, and
line breaks become spaces, so no new block can start. Chat: Slack reads `<...>` as links and
mentions, so `&`, `<` and `>` become Slack's own entities.
"""

from __future__ import annotations

import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]+")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def md_text(text: object) -> str:
    """Text as Markdown that shows it literally, on one line.

    A bare URL stays text that shows its own address; some wikis link it, to the address the
    reader sees (a link that hides its target, `[text](target)`, cannot be written).
    """
    return "".join(f"\\{c}" if c in _PUNCTUATION else c for c in _one_line(text))


def md_code(text: str) -> str:
    """An id as inline code when it is plainly one (letters, digits, `.`, `_`, `:`, `-`);
    anything else as escaped text, since a backslash escapes nothing inside a code span."""
    return f"`{text}`" if _PLAIN_ID.fullmatch(text) else md_text(text)


def slack_escape(text: str) -> str:
    """Text that Slack shows as it is: no mention notifies, no link hides its address.

    Slack's own escaping (https://api.slack.com/reference/surfaces/formatting#escaping):
    `&`, `<` and `>` as entities, which turns `<@U0123>`, `<!channel>` and `<url|label>` into
    text. `*bold*`, `_italics_` and bare URLs have no escape; they notify nobody.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_text(text: object) -> str:
    """Text for a Slack message, on one line: no link, mention or `<!channel>` can be made."""
    return slack_escape(_one_line(text))
