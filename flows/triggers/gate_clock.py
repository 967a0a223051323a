"""The server's gate clock: a thread that runs the timers of gates waiting in any incident.

Every `RUNBOOK_GATE_SCAN_S` seconds it reads the incident index for incidents whose latest run
stopped waiting (drills excepted: they settle their timers when they resume in their
sandboxes), and for each one does what its gate timers make due (`flows.engine.gate_timers`):
reminders, escalations and pages are posted from here; a gate its timeout failed or continued
gets a resume job, so the run fails or goes on in a worker, never in this thread.

The same pass watches regulatory clocks (`flows.engine.clock_timers`): reminders before each
deadline, and expiries, for every incident not succeeded.

The same pass continues incidents left stranded: answered (a gate acknowledged or rejected, a
step retried or skipped) more than STRANDED_AFTER_S ago, yet not continued since and with no job
queued. The resume job an answer queues can be lost to an intake that was down at that moment,
or a server killed between the two; the ledger still holds the answer, so it is acted on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from flows.contract.ports import ChatSystem
from flows.engine.clock_timers import ClockWatch
from flows.engine.gate_timers import Acted, check_incident
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.incident import DOCUMENT_FILE, incident_folder
from flows.evidence.population import Standing, read_population
from flows.evidence.records import Event
from flows.evidence.verify import read_records
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook
from flows.times import parse_utc, utc_now
from flows.triggers.intake import Intake
from flows.triggers.jobs import JobKind

LOG = logging.getLogger("runbook.gates")
STRANDED_AFTER_S = 60.0
"""How old an answer must be, with its incident not continued, before the clock continues it:
well past the moment its own resume job is queued, so the two never both run."""
ANSWERS = frozenset(
    {Event.GATE_ACKNOWLEDGED, Event.GATE_REJECTED, Event.STEP_RETRY_REQUESTED, Event.STEP_SKIPPED}
)
"""Records after which a waiting run must be continued to act on them."""


class GateClock:
    """Scans waiting incidents' gate timers every `interval` seconds until stopped."""

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        chat: Callable[[], ChatSystem],
        *,
        interval: float | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings, self.intake, self.clock = settings, intake, clock
        self._chat_of = chat
        self._chat: ChatSystem | None = None
        self.interval = settings.gate_scan_s if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="runbook-gate-clock", daemon=True)
        self._documents: dict[str, Runbook | None] = {}
        """Each waiting incident's document, parsed once (it never changes), or None when no
        gate of it has a timer."""
        self._resumed: set[tuple[str, int]] = set()
        """(incident, gate.timed_out seq) already given a resume job by this clock."""
        self._looked: dict[str, int] = {}
        """Incident -> its ledger's record count when last found not stranded."""
        self.clocks = ClockWatch(settings, lambda: self.chat)

    @property
    def chat(self) -> ChatSystem:
        """The chat system the runs post to, made on first use."""
        if self._chat is None:
            self._chat = self._chat_of()
        return self._chat

    def start(self) -> None:
        """Scan now (timers may have run out while no server ran), then every interval."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop scanning; a scan under way finishes first."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception as error:  # logged, and the next scan tries again
                LOG.error("gate clock: the scan failed: %s", error)
            self._stop.wait(self.interval)

    def scan(self, now: datetime | None = None) -> list[Acted]:
        """One pass over the waiting incidents; what it did (tests call it with their `now`)."""
        moment = self.clock() if now is None else now
        latest = read_population(self.settings.incidents_dir).latest().values()
        counts = {
            entry.incident: entry.count
            for entry in latest
            if entry.standing is Standing.WAITING and not entry.drill
        }
        waiting = list(counts)
        for gone in set(self._documents) - set(waiting):
            del self._documents[gone]
        acted: list[Acted] = []
        for incident in waiting:
            try:
                acted += self._check(incident, moment)
                self._continue_if_stranded(incident, counts[incident], moment)
            except RunbookError as error:  # one broken incident never stops the others
                LOG.error("gate clock: incident %s: %s", incident, error)
        self.clocks.scan(latest, moment)
        return acted

    def _continue_if_stranded(self, incident: str, count: int, now: datetime) -> None:
        """Queue a resume for an incident answered long enough ago but never continued."""
        if self._looked.get(incident) == count or self.intake.queued(incident):
            return
        folder = incident_folder(self.settings.incidents_dir, incident)
        records = read_records(folder)
        ends = [i for i, r in enumerate(records) if r.event is Event.RUN_FINISHED]
        since = records[ends[-1] + 1 :] if ends else []
        if any(r.event in (Event.RUN_STARTED, Event.RUN_RESUMED) for r in since):
            return  # a run is under way (a terminal's)
        answers = [r for r in since if r.event in ANSWERS]
        if not answers:
            self._looked[incident] = len(records)
            return
        waited = (now - parse_utc(answers[-1].ts)).total_seconds()
        if waited < STRANDED_AFTER_S:
            return  # its own resume job may still be on the way; look again next time
        LOG.warning(
            "incident %s was answered %.0f s ago (%s) but never continued; continuing it",
            incident,
            waited,
            answers[-1].event,
        )
        self.intake.enqueue(JobKind.RESUME, incident, str(folder / DOCUMENT_FILE), {})
        self._looked[incident] = len(records)

    def _check(self, incident: str, now: datetime) -> list[Acted]:
        runbook = self._document(incident)
        if runbook is None:
            return []
        check = check_incident(self.settings, incident, self.chat, now=now, runbook=runbook)
        for item in check.acted:
            if item.record is not None:
                LOG.info("gate %s of %s: %s", item.due.gate.id, incident, item.due.act)
        if check.settled is not None and (incident, check.settled) not in self._resumed:
            document = incident_folder(self.settings.incidents_dir, incident) / DOCUMENT_FILE
            self.intake.enqueue(JobKind.RESUME, incident, str(document), {})
            self._resumed.add((incident, check.settled))
        return list(check.acted)

    def _document(self, incident: str) -> Runbook | None:
        if incident not in self._documents:
            folder = incident_folder(self.settings.incidents_dir, incident)
            runbook = parse_runbook(folder / DOCUMENT_FILE)
            timed = any(g.policy is not None and g.policy.timeout_s for g in runbook.gates)
            self._documents[incident] = runbook if timed else None
        return self._documents[incident]
