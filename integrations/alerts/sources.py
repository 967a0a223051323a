"""Every alert source the trigger server answers, by its name in `triggers.alerts[].source`.

The keys are exactly the `AlertSource` names a runbook may declare (a test holds them equal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from integrations.alerts import Alert, alertmanager, datadog, generic, grafana, pagerduty

Parser = Callable[[bytes, Mapping[str, str]], list[Alert]]
"""Turns a webhook body (and its headers) into alerts; raises PayloadError on a bad payload."""

PARSERS: dict[str, Parser] = {
    "alertmanager": alertmanager.parse,
    "grafana": grafana.parse,
    "datadog": datadog.parse,
    "pagerduty": pagerduty.parse,
    "generic": generic.parse,
}
