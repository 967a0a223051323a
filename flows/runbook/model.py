"""The checked shape of a runbook: front matter, steps and gates, with their source lines.

These models are the single source of the JSON Schema (`runbook schema`) and of validation
messages. Line numbers are kept beside the data, not inside it, so the schema stays clean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

IDENTIFIER = r"^[a-z0-9][a-z0-9_-]*$"
"""Runbook, step and gate ids: lowercase, digits, `-`, `_`; safe in paths, flow and task names."""

Kind = Literal["breach", "model-failure", "outage", "other"]
AlertSource = Literal["alertmanager", "grafana", "datadog", "pagerduty", "generic"]
InputType = Literal["string", "integer", "number", "boolean"]


class Strict(BaseModel):
    """Base for document models: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class InputSpec(Strict):
    """One runbook input; inputs become the Prefect flow's parameters."""

    type: InputType = "string"
    required: bool = False
    default: str | int | float | bool | None = None
    description: str = ""
    secret: bool = Field(
        default=False,
        description="Kept out of the ledger, logs, chat and Prefect's stored parameters.",
    )


class AlertTrigger(Strict):
    """Start this runbook when an alert from `source` matches every `match` label or field."""

    source: AlertSource
    match: dict[str, str] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(
        default_factory=dict, description="Input name -> template over `alert`."
    )


class SlackTrigger(Strict):
    """Start this runbook with `/runbook <command> key=value ...` from Slack."""

    command: str
    allowed: list[str] = Field(
        default_factory=list, description="Channels (#name), users (@name) or user groups."
    )


class Triggers(Strict):
    """The ways a runbook can be started besides the CLI."""

    alerts: list[AlertTrigger] = Field(default_factory=list)
    slack: SlackTrigger | None = None


COMMANDER = "incident-commander"
"""The roster role of the incident commander, unless a runbook's `steering.commander` says."""
STARTER = "starter"
"""In `separation` and `steering`: the person who started the incident."""
ANYONE = "anyone"
"""In `steering`: anyone the roster knows (without a roster: anyone)."""

SteeringAct = Literal["status", "resume", "retry", "skip", "abort", "assign", "severity", "note"]
STEERING_ACTS: tuple[SteeringAct, ...] = (
    "status",
    "resume",
    "retry",
    "skip",
    "abort",
    "assign",
    "severity",
    "note",
)
_OPEN_ACTS = frozenset({"status", "note"})
"""Acts open to anyone the roster knows unless the runbook says otherwise: reading, and notes."""

Steerers = list[str] | None


class Steering(Strict):
    """Who may steer an incident of this runbook, act by act.

    Each act lists roster roles, `starter` (whoever started the incident) or `anyone` (anyone the
    roster knows). Someone assigned a role on an incident (`assign ROLE PERSON`) holds that role
    for the incident. An act left out is open to the commander role and the starter; `status`
    and `note` to anyone the roster knows. Without a roster anyone may steer.
    """

    commander: str = Field(
        default=COMMANDER,
        pattern=IDENTIFIER,
        description="The roster role of the incident commander: status shows who is assigned it.",
    )
    status: Steerers = Field(default=None, description="May see the incident and its steps.")
    resume: Steerers = Field(default=None, description="May continue the run.")
    retry: Steerers = Field(default=None, description="May run a failed step again.")
    skip: Steerers = Field(default=None, description="May skip a step, giving a reason.")
    abort: Steerers = Field(default=None, description="May stop the incident for good.")
    assign: Steerers = Field(default=None, description="May assign a role (the commander).")
    severity: Steerers = Field(default=None, description="May change the incident's severity.")
    note: Steerers = Field(default=None, description="May add a note to the timeline.")

    def who_may(self, act: SteeringAct) -> tuple[str, ...]:
        """The roles and words (`starter`, `anyone`) that may perform `act`."""
        declared: Steerers = getattr(self, act)
        if declared is not None:
            return tuple(declared)
        return (ANYONE,) if act in _OPEN_ACTS else (self.commander, STARTER)


CLOCK_ID = r"^[a-z0-9][a-z0-9_.-]*$"
"""Clock ids: as other ids, and dots too (`sec-8k-1.05`, `nydfs-500.17`)."""
DURATION = r"^(\d+d(\d+h)?(\d+m)?|\d+h(\d+m)?|\d+m)$"
"""A duration in days, hours and minutes, largest first: `12h`, `30m`, `1d12h`."""


class ClockSpec(Strict):
    """One regulatory clock a runbook tracks: an id from the catalogue (flows/runbook/clocks.py)
    or a custom clock, the gates that start and stop it, and whom to remind before it expires.

    `hours`, `days`, `business_days`, `title`, `source`, `calendar`, `time_zone` and `day_ends`
    declare a custom clock; catalogue clocks take none of them.
    """

    id: str = Field(pattern=CLOCK_ID, description="A catalogue id (gdpr-art33, ...) or your own.")
    starts_at: str = Field(
        pattern=IDENTIFIER,
        description="The determination gate: its acknowledgement starts the clock; its note is"
        " the reasoning.",
    )
    stops_at: str | dict[str, str] = Field(
        description="The notified gate whose acknowledgement (its note: the filing's reference)"
        " stops the clock; for a clock with several milestones, milestone -> gate."
    )
    owner: str = Field(pattern=IDENTIFIER, description="The roster role reminded before expiry.")
    remind_before: str | None = Field(
        default=None,
        pattern=DURATION,
        description="How long before each deadline to remind the owner: 12h, 30m, 1d12h.",
    )
    aware_at: str | None = Field(
        default=None,
        pattern=IDENTIFIER,
        description="The gate recording awareness, for clocks counting from it (dora-major);"
        " left out: the moment the incident was opened.",
    )
    events: dict[str, str] = Field(
        default_factory=dict,
        description="Event -> the gate recording it (ransom-payment, extortion-payment): starts"
        " the milestones counting from it.",
    )
    variant: str | None = Field(
        default=None,
        description="The default variant (eu-ai-act-art73: general, widespread,"
        " critical-infrastructure, death); `variant: X` in the determination note overrides it.",
    )
    title: str | None = Field(default=None, description="A custom clock's title.")
    source: str | None = Field(default=None, description="A custom clock's legal source.")
    hours: int | None = Field(default=None, ge=1, description="A custom clock's hours.")
    days: int | None = Field(default=None, ge=1, description="A custom clock's calendar days.")
    business_days: int | None = Field(
        default=None, ge=1, description="A custom clock's business days."
    )
    calendar: str | None = Field(
        default=None,
        description="Business days: whose public holidays (US, DE, US-NY, ...) or `none`.",
    )
    time_zone: str | None = Field(
        default=None, description="Business days: the IANA time zone, e.g. Europe/Berlin."
    )
    day_ends: str = Field(
        default="23:59",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Business days: the local time a business day ends (HH:MM).",
    )


class DrillPolicy(Strict):
    """How this runbook's drills count toward its freshness (`runbook freshness`)."""

    rehearsals_count: bool = Field(
        default=False,
        description="Scripted rehearsals (gates answered from a scenario's `answers`) keep the"
        " runbook fresh too; left out, only drills people answered count.",
    )


class FrontMatter(Strict):
    """The YAML front matter at the top of a runbook document."""

    id: str = Field(pattern=IDENTIFIER)
    title: str
    kind: Kind
    severity: str = Field(pattern=r"^sev[1-5]$", description="sev1 (worst) to sev5.")
    version: int = Field(ge=1)
    owner: str
    soc2: list[str] = Field(default_factory=list, description="SOC 2 criteria, e.g. CC7.4.")
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    triggers: Triggers = Field(default_factory=Triggers)
    steering: Steering = Field(
        default_factory=Steering, description="Who may steer an incident: retry, skip, abort, ..."
    )
    clocks: list[ClockSpec] = Field(
        default_factory=list,
        description="Regulatory clocks: each started and stopped by a gate (regulatory-clocks.md).",
    )
    drills: DrillPolicy = Field(
        default_factory=DrillPolicy, description="How drills of it count (drills.md)."
    )
    description: str = ""


class StepSpec(Strict):
    """The YAML inside a ```step fence: one automated step."""

    id: str = Field(pattern=IDENTIFIER)
    uses: str = Field(description="Action name, e.g. jira.create_issue.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    needs: list[str] = Field(
        default_factory=list,
        description="Steps or gates that must finish first; steps that declare needs may run"
        " side by side. Left out: the step follows the item above it, alone.",
    )
    if_: str | None = Field(default=None, alias="if", description="Template; falsy skips.")
    for_each: list[Any] | str | None = Field(
        default=None,
        description="Run the step once per item: a list, or a template or expression giving"
        " one (`{{ inputs.hosts }}`; text splits at commas). `with` sees the item as `item`;"
        " the step's outputs are a list, one entry per item.",
    )
    retries: int = Field(default=0, ge=0, le=20)
    retry_delay_s: float = Field(default=0.0, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)
    on_failure: str = Field(
        default="stop", description="stop | continue | the id of a step to run as rollback."
    )
    drill: Literal["simulate", "run"] = "simulate"

    @field_validator("for_each", mode="before")
    @classmethod
    def _a_list_or_text(cls, value: Any) -> Any:
        # One message for both forms, where the union would report each form it is not.
        if value is not None and not isinstance(value, list | str):
            raise ValueError("a list of items, or a template or expression that gives one")
        return value


class Step(BaseModel):
    """A step as placed in its document: the spec plus its title and source lines."""

    model_config = ConfigDict(frozen=True)

    spec: StepSpec
    title: str
    line: int
    key_lines: dict[str, int] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.spec.id


class Approvers(Strict):
    """Who may pass a gate: anyone holding one of `roles`, named in `people`, or in `groups`.

    Every name is one the roster (responders.yaml) declares; `runbook validate` checks them.
    """

    roles: list[str] = Field(default_factory=list, description="Roster roles, e.g. security.")
    people: list[str] = Field(default_factory=list, description="Roster people by id.")
    groups: list[str] = Field(
        default_factory=list, description="Roster groups (Slack user groups) by id."
    )


OnTimeout = Literal["escalate", "page", "fail", "continue"]


class GatePolicy(Strict):
    """The YAML inside a ```gate fence: who may pass the gate, how many, and its timer.

    The timer (`timeout_s`, `on_timeout`, `escalate_to`, `remind_before_s`) runs from the gate's
    `gate.waiting` record; `flows.engine.gate_timers` acts on it.
    """

    approvers: Approvers | None = Field(
        default=None, description="Who may pass it; left out: anyone the engine can identify."
    )
    min_approvals: int = Field(
        default=1, ge=1, le=20, description="How many different people must approve it."
    )
    separation: list[str] = Field(
        default_factory=list,
        description="Who may not approve it: `starter` (who started the incident) and step or"
        " gate ids (whoever ran, requested or approved them).",
    )
    timeout_s: float | None = Field(
        default=None, gt=0, description="Seconds the gate may wait before `on_timeout`."
    )
    on_timeout: OnTimeout | None = Field(
        default=None,
        description="What happens when `timeout_s` passes: escalate, page, fail or continue.",
    )
    escalate_to: str | None = Field(
        default=None, description="The roster role escalated to or paged on timeout."
    )
    remind_before_s: float | None = Field(
        default=None, gt=0, description="Remind the approvers this many seconds before timeout."
    )


class Gate(BaseModel):
    """A manual gate: the `- [ ]` checklist under one heading, acknowledged by a responder.

    `policy` is its ```gate fence (None: anyone may pass it, one approval); `policy_line` is
    the fence's line and `key_lines` the file line of each key inside it.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    items: tuple[str, ...]
    line: int
    needs: tuple[str, ...] = ()
    policy: GatePolicy | None = None
    policy_line: int | None = None
    key_lines: dict[str, int] = Field(default_factory=dict)


Item = Step | Gate


class Unread(BaseModel):
    """What a document holds but could not be read, so checks that need it are skipped.

    `front_matter` holds dotted keys (`owner`, `inputs.service`) whose values in the runbook's
    front matter are stand-ins; `items` holds the ids of steps left out because their block is
    broken. A reference to either is not reported as unknown: it is the broken part's problem.
    """

    model_config = ConfigDict(frozen=True)

    front_matter: frozenset[str] = frozenset()
    items: frozenset[str] = frozenset()

    def has(self, key: str) -> bool:
        """True when the front-matter `key`, or a key it lies inside, could not be read."""
        parts = key.split(".")
        return any(".".join(parts[:end]) in self.front_matter for end in range(1, len(parts) + 1))


class Runbook(BaseModel):
    """A parsed runbook document: front matter, items in document order, and where it came from."""

    model_config = ConfigDict(frozen=True)

    meta: FrontMatter
    items: tuple[Item, ...]
    path: Path
    sha256: str
    text: str
    meta_lines: dict[str, int] = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(i for i in self.items if isinstance(i, Step))

    @property
    def gates(self) -> tuple[Gate, ...]:
        return tuple(i for i in self.items if isinstance(i, Gate))

    def item(self, item_id: str) -> Item:
        """The step or gate with this id (KeyError when there is none)."""
        for candidate in self.items:
            if candidate.id == item_id:
                return candidate
        raise KeyError(item_id)
