"""Which runbooks an alert starts, and with what inputs: the trigger matchers and templates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flows.runbook.model import AlertTrigger, Runbook
from flows.runbook.templates import TemplateFailure, render
from integrations.alerts import Alert


@dataclass(frozen=True)
class Route:
    """One runbook an alert starts, with the inputs its trigger mapped from the alert."""

    runbook: Runbook
    trigger: AlertTrigger
    inputs: dict[str, Any]


@dataclass(frozen=True)
class Unroutable:
    """A runbook whose trigger matched but whose input templates failed on this alert."""

    runbook: Runbook
    reason: str


def route_alert(alert: Alert, runbooks: Iterable[Runbook]) -> tuple[list[Route], list[Unroutable]]:
    """Every runbook with a trigger for this alert (first matching trigger per runbook)."""
    routes: list[Route] = []
    failures: list[Unroutable] = []
    context = {"alert": alert.template_context()}
    for runbook in runbooks:
        for trigger in runbook.meta.triggers.alerts:
            if trigger.source != alert.source or not alert.matches(trigger.match):
                continue
            try:
                # The alert is data: its values are rendered into inputs, never as templates.
                inputs = {
                    name: render(template, context, where=f"trigger of {runbook.id}")
                    for name, template in trigger.inputs.items()
                }
            except TemplateFailure as error:
                failures.append(Unroutable(runbook, str(error)))
            else:
                routes.append(Route(runbook, trigger, inputs))
            break
    return routes, failures
