"""Slack's mrkdwn, as far as text from outside must be kept from acting in it.

Slack reads markup between `<` and `>`: mentions (`<@U0123>`, `<!channel>`), channel links and
labelled links (`<https://example.com|the console>`). `escape` is the one Slack escaping the
engine uses (the evidence layer's, so the postmortem and the gate reminders say things the same
way); `*bold*`, `_italics_` and bare URLs have no escape in mrkdwn and cannot notify anyone or
hide where a link goes.
"""

from __future__ import annotations

from flows.evidence.escaping import slack_escape as escape

__all__ = ["escape"]
