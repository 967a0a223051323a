"""The catalogue of regulatory clocks: each notification duty, its legal source, and how its
deadlines are computed. docs/regulatory-clocks.md describes the same, clock by clock.

A clock has one or more milestones (NIS2's early warning, notification and final report). Each
milestone's deadline is the earliest of its terms, and a term counts from an anchor:

- `determination`: the acknowledgement of the clock's `starts_at` gate (awareness of a
  personal data breach, a materiality determination, a classification as major);
- `awareness`: when the team became aware of the incident: the acknowledgement of the clock's
  `aware_at` gate, else the moment the incident was opened;
- another milestone's id: when that milestone was filed (its `stops_at` gate acknowledged);
- an event (`ransom-payment`): the acknowledgement of the gate the runbook names for it under
  `events`.

How a runbook's declaration is read against it is `flows.runbook.declared_clocks`. The table
is an aid to responders, not legal advice: each entry cites its source, to be read.
`CATALOGUE_VERSION` goes into every `clock.started` record; change it whenever a computation
changes, so the evidence says which rules a deadline was computed by.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.runbook.deadlines import US_FEDERAL, Calendar, Unit, amount_text

CATALOGUE_VERSION = "2026.1"

DETERMINATION = "determination"
AWARENESS = "awareness"
CUSTOM_MILESTONE = "deadline"
"""The one milestone of a custom clock."""
_ANCHOR_WORDS = {DETERMINATION: "the determination", AWARENESS: "awareness"}


@dataclass(frozen=True)
class Term:
    """`amount` of `unit` after `after` (an anchor: see the module)."""

    after: str
    amount: int
    unit: Unit

    def describe(self, words: dict[str, str] | None = None) -> str:
        """`72 h from the determination`, `one month after the notification`."""
        named = {**_ANCHOR_WORDS, **(words or {})}
        anchor = named.get(self.after, self.after)
        joiner = "from" if self.after in _ANCHOR_WORDS else "after"
        return f"{amount_text(self.amount, self.unit)} {joiner} {anchor}"


@dataclass(frozen=True)
class Milestone:
    """One filing a clock tracks, due at the earliest of its terms."""

    id: str
    title: str
    terms: tuple[Term, ...]

    @property
    def after(self) -> str:
        """The anchor the milestone waits for: its first term's. Any other term counts from the
        determination or awareness, both known by the time the clock starts."""
        return self.terms[0].after


@dataclass(frozen=True)
class Variant:
    """One reading of a clock chosen at its determination (the AI Act's death case)."""

    id: str
    title: str
    milestones: tuple[Milestone, ...]


@dataclass(frozen=True)
class Clock:
    """A notification duty: what starts it, its source, and its milestones (per variant)."""

    id: str
    title: str
    source: str
    """The legal citation, as a responder would look it up."""
    starts: str
    """What the determination gate decides, in words."""
    variants: tuple[Variant, ...]
    """The first is the default; a clock without variants has one, named `standard`."""
    calendar: Calendar | None = None
    """Where business days are counted (business-day terms only)."""
    events: tuple[str, ...] = ()
    """Events a runbook may name a gate for (`events:`), each starting its own milestones."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """What the computation leaves out, for the docs."""
    determined: str = "the determination"
    """The determination as this clock's source names it: `awareness`, `discovery`."""

    @property
    def milestones(self) -> tuple[Milestone, ...]:
        """The default variant's milestones; every variant has the same ids."""
        return self.variants[0].milestones

    def variant(self, variant_id: str | None) -> Variant | None:
        """The variant with this id (the default for None), or None when there is none."""
        if variant_id is None:
            return self.variants[0]
        return next((v for v in self.variants if v.id == variant_id), None)

    def milestone_words(self) -> dict[str, str]:
        """Milestone and event ids as the rules name them: `the incident notification`."""
        words = {m.id: f"the {m.title[0].lower()}{m.title[1:]}" for m in self.milestones}
        words[DETERMINATION] = self.determined
        words.update({event: f"the {event.replace('-', ' ')}" for event in self.events})
        return words

    def rule(self, milestone: Milestone) -> str:
        """How a milestone's deadline is computed, in words."""
        words = self.milestone_words()
        parts = [term.describe(words) for term in milestone.terms]
        return parts[0] if len(parts) == 1 else "the earliest of " + " and ".join(parts)


def _one(milestone: Milestone) -> tuple[Variant, ...]:
    return (Variant("standard", "standard", (milestone,)),)


def _hours(after: str, hours: int) -> Term:
    return Term(after, hours, "hours")


def _ai_report(days: int) -> Milestone:
    return Milestone("report", "Serious incident report", (Term(DETERMINATION, days, "days"),))


CATALOGUE: tuple[Clock, ...] = (
    Clock(
        id="gdpr-art33",
        title="GDPR personal data breach notification",
        source="GDPR (Regulation (EU) 2016/679) Art. 33(1)",
        starts="the controller became aware of a personal data breach",
        determined="awareness",
        variants=_one(
            Milestone(
                "notification",
                "Notification to the supervisory authority",
                (_hours(DETERMINATION, 72),),
            )
        ),
        notes=(
            "Art. 33(4) lets information be given in phases; the first notification is what the"
            " 72 hours bound. Art. 33(5): every breach is documented, notified or not.",
        ),
    ),
    Clock(
        id="sec-8k-1.05",
        title="SEC Form 8-K Item 1.05, material cybersecurity incident",
        source="Form 8-K Item 1.05 and General Instruction B.1; business days per Exchange Act"
        " Rule 0-3 (17 CFR 240.0-3); filing cut-off per Regulation S-T Rule 13(a)(2)",
        starts="the registrant determined the incident is material",
        determined="the materiality determination",
        variants=_one(
            Milestone(
                "form-8k",
                "Form 8-K Item 1.05 filed",
                (Term(DETERMINATION, 4, "business_days"),),
            )
        ),
        calendar=US_FEDERAL,
        notes=(
            "A business day is any day but a Saturday, a Sunday or a US federal holiday (the"
            " observed day when it falls on a weekend); the deadline is 17:30 America/New_York"
            " on the fourth business day after the determination date, EDGAR's cut-off for a"
            " filing to be dated that day.",
            "Days the Commission closes on short notice (a national day of mourning) are not"
            " known in advance: the deadline shown is then a business day early, never late.",
            "The Attorney General's national-security delay (Item 1.05(c)) is not modelled.",
        ),
    ),
    Clock(
        id="nis2-art23",
        title="NIS2 significant incident reporting",
        source="NIS2 Directive (EU) 2022/2555 Art. 23(4)",
        starts="the entity became aware of a significant incident",
        determined="awareness",
        variants=(
            Variant(
                "standard",
                "standard",
                (
                    Milestone(
                        "early-warning", "Early warning to the CSIRT", (_hours(DETERMINATION, 24),)
                    ),
                    Milestone(
                        "notification", "Incident notification", (_hours(DETERMINATION, 72),)
                    ),
                    Milestone("final-report", "Final report", (Term("notification", 1, "months"),)),
                ),
            ),
        ),
        notes=(
            "Intermediate reports are due on request (Art. 23(4)(c)) and are not tracked.",
            "Trust service providers have 24 h for the notification (Art. 23(4)(b)): declare a"
            " custom clock for that.",
        ),
    ),
    Clock(
        id="dora-major",
        title="DORA major ICT-related incident reporting",
        source="DORA (Regulation (EU) 2022/2554) Art. 19(4); time limits in Commission"
        " Delegated Regulation (EU) 2025/301 Art. 5",
        starts="the financial entity classified the incident as major",
        determined="classification as major",
        variants=(
            Variant(
                "standard",
                "standard",
                (
                    Milestone(
                        "initial",
                        "Initial notification",
                        (_hours(DETERMINATION, 4), _hours(AWARENESS, 24)),
                    ),
                    Milestone("intermediate", "Intermediate report", (_hours("initial", 72),)),
                    Milestone("final", "Final report", (Term("intermediate", 1, "months"),)),
                ),
            ),
        ),
        notes=(
            "Awareness is the acknowledgement of the `aware_at` gate when the runbook names one,"
            " else the moment the incident was opened.",
            "The final report counts from the intermediate report the runbook's gate records;"
            " updated intermediate reports after it are not tracked.",
            "The relief some entities have for a deadline on a weekend or a bank holiday"
            " (noon of the next working day) is not applied: the deadline shown is the earlier.",
        ),
    ),
    Clock(
        id="eu-ai-act-art73",
        title="EU AI Act serious incident report",
        source="AI Act (Regulation (EU) 2024/1689) Art. 73(2) to (4)",
        starts="the provider became aware of the serious incident (a causal link with the AI"
        " system established, or reasonably likely)",
        determined="awareness",
        variants=(
            Variant(
                "general",
                "a serious incident (Art. 73(2))",
                (_ai_report(15),),
            ),
            Variant(
                "widespread",
                "a widespread infringement (Art. 73(3))",
                (_ai_report(2),),
            ),
            Variant(
                "critical-infrastructure",
                "a serious disruption of critical infrastructure, Art. 3(49)(b) (Art. 73(3))",
                (_ai_report(2),),
            ),
            Variant(
                "death",
                "the death of a person (Art. 73(4))",
                (_ai_report(10),),
            ),
        ),
        notes=(
            "The variant is chosen at the determination gate: its acknowledgement note says"
            " `variant: death` (or `widespread`, `critical-infrastructure`); the runbook's"
            " `variant:` is the default, `general` when it names none.",
        ),
    ),
    Clock(
        id="hipaa-breach",
        title="HIPAA breach notification",
        source="HIPAA Breach Notification Rule, 45 CFR 164.404(b) (individuals); 164.406 and"
        " 164.408(b) (media and HHS, for 500 or more)",
        starts="the covered entity discovered the breach of unsecured protected health information",
        determined="discovery",
        variants=_one(
            Milestone(
                "notification",
                "Notice to affected individuals",
                (Term(DETERMINATION, 60, "days"),),
            )
        ),
        notes=(
            "60 calendar days is the outer limit; notice is due without unreasonable delay."
            " The same limit holds for HHS and the media when 500 or more are affected; smaller"
            " breaches go to HHS in the yearly log, which is not tracked.",
        ),
    ),
    Clock(
        id="circia",
        title="CIRCIA covered cyber incident and ransom payment reports",
        source="Cyber Incident Reporting for Critical Infrastructure Act of 2022,"
        " 6 U.S.C. 681b(a)(1) and (a)(2)",
        starts="the covered entity reasonably believes a covered cyber incident occurred",
        determined="the reasonable belief",
        variants=(
            Variant(
                "standard",
                "standard",
                (
                    Milestone(
                        "report",
                        "Covered cyber incident report to CISA",
                        (_hours(DETERMINATION, 72),),
                    ),
                    Milestone(
                        "ransom-payment-report",
                        "Ransom payment report to CISA",
                        (_hours("ransom-payment", 24),),
                    ),
                ),
            ),
        ),
        events=("ransom-payment",),
        notes=(
            "The duties apply once CISA's final rule takes effect; check whether it does for you.",
            "The ransom payment report is tracked only when the runbook names a gate for the"
            " `ransom-payment` event.",
        ),
    ),
    Clock(
        id="nydfs-500.17",
        title="NYDFS cybersecurity incident and extortion payment notices",
        source="23 NYCRR 500.17(a)(1) and (c)",
        starts="the covered entity determined a cybersecurity incident occurred",
        variants=(
            Variant(
                "standard",
                "standard",
                (
                    Milestone(
                        "notification",
                        "Notice to the superintendent",
                        (_hours(DETERMINATION, 72),),
                    ),
                    Milestone(
                        "extortion-payment-notice",
                        "Notice of the extortion payment",
                        (_hours("extortion-payment", 24),),
                    ),
                    Milestone(
                        "extortion-payment-reasons",
                        "Written description of why the payment was necessary",
                        (Term("extortion-payment", 30, "days"),),
                    ),
                ),
            ),
        ),
        events=("extortion-payment",),
        notes=(
            "The extortion payment milestones are tracked only when the runbook names a gate for"
            " the `extortion-payment` event.",
        ),
    ),
)
"""Every clock a runbook may name by id, in the order docs/regulatory-clocks.md lists them."""

CATALOGUE_IDS = tuple(clock.id for clock in CATALOGUE)


def catalogue_clock(clock_id: str) -> Clock | None:
    """The catalogue's clock with this id, or None."""
    return next((clock for clock in CATALOGUE if clock.id == clock_id), None)
