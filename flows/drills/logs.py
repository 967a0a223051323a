"""A drill's log without the tracebacks of failures its injects caused.

An injected failure (a `fail_integration` inject) is the drill working as scripted: the step's
failure is recorded in the ledger and scored `inject-caused`. Prefect logs every failed task
with its traceback, which tells the facilitator nothing; the one-line error stays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flows.drills.score import INJECTED

TASK_RUN_LOGGER = "prefect.task_runs"
"""Where Prefect logs a task run's failure."""


class InjectedFailureFilter(logging.Filter):
    """Keeps every record, dropping the traceback of a failure a drill inject caused."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop the record's traceback when its exception is an injected failure."""
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and INJECTED in str(error):
            record.exc_info, record.exc_text = None, None
        return True


@contextmanager
def quiet_injected_failures() -> Iterator[None]:
    """While a drill runs, log injected failures as one line each."""
    logger = logging.getLogger(TASK_RUN_LOGGER)
    quiet = InjectedFailureFilter()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)
