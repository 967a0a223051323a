"""One exception type for problems a user can fix, each carrying where it is and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """A single thing wrong with a runbook (or other user input), located at file:line.

    `path` and `line` are None when the problem has no place in a file (a bad `--input`, say):
    a made-up location would send the reader looking for it.
    """

    path: Path | str | None
    line: int | None
    message: str
    hint: str = ""

    def __str__(self) -> str:
        if self.path is None:
            text = self.message
        elif self.line is None:
            text = f"{self.path}: {self.message}"
        else:
            text = f"{self.path}:{self.line}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class RunbookError(Exception):
    """A user-facing error: printed by the CLI as `path:line: message`, never as a traceback."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(None, None, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StepFailed(Exception):
    """An action failed in a way the responder can act on; the message says what to fix."""
