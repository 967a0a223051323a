"""Where the server talks about an incident in chat, and what it says when a run cannot go on.

An incident's gates and notices go to the channel its run opened, else to its runbook's owner
channel (`owner: "#sec-oncall"`), titled with the runbook's title. Both come from the incident's
own copy of the document, so a resume finds them as the first run did.

After each start or resume the server posts a notice when the run failed (the step and its
error), ended without finishing (the engine's error), or stopped at a gate nobody could be asked
to answer; a run that waits at a posted gate or succeeds needs no notice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from flows.contract.ports import ChatSystem
from flows.engine.execute import RunOutcome
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.incident import DOCUMENT_FILE, incident_folder
from flows.evidence.progress import RunStatus
from flows.evidence.records import Event
from flows.evidence.verify import read_records
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook
from flows.triggers.jobs import Job
from integrations.slack import ChatError, notices
from integrations.slack.gates import ChatGateResponder
from integrations.slack.replies import without_paths

LOG = logging.getLogger("runbook.server")


@dataclass(frozen=True)
class Room:
    """Where an incident is talked about when it has no channel of its own, and its title."""

    title: str
    channel: str | None
    """The runbook owner's `#channel`, or None when the owner is not a channel."""


class IncidentNotices:
    """Gate responders for the jobs the workers run, and the notices that follow each run."""

    def __init__(self, settings: Settings, chat: ChatSystem, runbooks: list[Runbook]) -> None:
        self.settings, self.chat = settings, chat
        self._by_path = {str(r.path): r for r in runbooks}
        self._asked: dict[int, ChatGateResponder] = {}
        self._lock = threading.Lock()

    def room(self, job: Job) -> Room:
        """The title and owner channel of the runbook a job's incident runs."""
        runbook = self._runbook(job)
        if runbook is None:
            return Room(job.incident, None)
        owner = runbook.meta.owner
        return Room(runbook.meta.title, owner if owner.startswith("#") else None)

    def responder(self, job: Job) -> ChatGateResponder:
        """The responder that posts this job's gates; kept until the job's notice is decided."""
        room = self.room(job)
        responder = ChatGateResponder(self.chat, room.title, lambda: room.channel)
        with self._lock:
            self._asked[job.id] = responder
        return responder

    def finished(self, job: Job, outcome: RunOutcome) -> None:
        """Tell the incident's channel when the run failed or waits at a gate nobody was asked."""
        with self._lock:
            responder = self._asked.pop(job.id, None)
        title = self.room(job).title
        if outcome.status is RunStatus.FAILED:
            step, error = self._stopping_failure(job, outcome)
            self._post(job, notices.run_failed(title, job.incident, step, without_paths(error)))
        elif outcome.status is RunStatus.WAITING and responder is not None and responder.unasked:
            self._post(job, notices.gates_unasked(title, job.incident, responder.unasked))

    def crashed(self, job: Job, error: BaseException) -> None:
        """Tell the incident's channel that its run ended before it finished."""
        with self._lock:
            self._asked.pop(job.id, None)
        text, _ = self.settings.redactor().redact(str(error) or type(error).__name__)
        self._post(
            job, notices.run_crashed(self.room(job).title, job.incident, without_paths(text))
        )

    def _runbook(self, job: Job) -> Runbook | None:
        document = incident_folder(self.settings.incidents_dir, job.incident) / DOCUMENT_FILE
        if document.exists():
            try:
                return parse_runbook(document)
            except RunbookError:
                pass  # the library's copy still names the title and owner
        return self._by_path.get(job.runbook_path)

    def _stopping_failure(self, job: Job, outcome: RunOutcome) -> tuple[str | None, str]:
        """The step whose failure stopped this run, and its error as the ledger keeps it."""
        folder = incident_folder(self.settings.incidents_dir, job.incident)
        records = read_records(folder)
        starts = [
            i for i, r in enumerate(records) if r.event in (Event.RUN_STARTED, Event.RUN_RESUMED)
        ]
        this_run = records[starts[-1] :] if starts else records
        stopping = [
            r
            for r in this_run
            if r.event is Event.STEP_FAILED and r.data.get("on_failure") != "continue"
        ]
        if not stopping:
            return None, outcome.error or "no error was recorded"
        return stopping[-1].step, str(stopping[-1].data.get("error") or "no error was recorded")

    def _post(self, job: Job, text: str) -> None:
        room = self.room(job)
        channel = self.chat.incident_channel(job.incident) or room.channel
        if channel is None:
            LOG.warning("no channel to tell about incident %s: %s", job.incident, text)
            return
        try:
            # One notice per job: a job run again after a restart finds its notice posted.
            self.chat.post(channel, text, f"{job.incident}:notice:{job.id}")
        except ChatError as error:
            LOG.warning("could not tell %s about incident %s: %s", channel, job.incident, error)
