"""Slack's mrkdwn, as far as text from outside must be kept from acting in it.

Slack reads markup between `<` and `>`: mentions (`<@U0123>`, `<!channel>`), channel links and
labelled links (`<https://example.com|the console>`). Escaping `&`, `<` and `>` as Slack asks
(https://api.slack.com/reference/surfaces/formatting#escaping) turns all of them into text.
`*bold*`, `_italics_` and bare URLs have no escape in mrkdwn; they cannot notify anyone or hide
where a link goes.
"""

from __future__ import annotations


def escape(text: str) -> str:
    """Text that Slack shows as it is: no mention notifies, no link hides its address."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
