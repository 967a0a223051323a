"""Read a runbook document into a Runbook: front matter, ```step fences, checklist gates and
the ```gate fences that say who may pass them.

Markdown blocks carry their lines and YAML nodes give positions inside each block, so every key
of every step is known by its file line and every problem points at it. Prose is kept in
`Runbook.text` and never run. A document is read as far as it can be, so `runbook validate`
reports every problem in one pass; `parse_runbook` refuses any document with one.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from flows.errors import Problem, RunbookError
from flows.runbook.markdown import Token, block_tokens
from flows.runbook.model import (
    IDENTIFIER,
    FrontMatter,
    Gate,
    GatePolicy,
    Item,
    Runbook,
    Step,
    StepSpec,
    Unread,
)
from flows.runbook.schema import validation_problems
from flows.runbook.yaml_lines import YamlProblem, load_yaml

_CHECKBOX = re.compile(r"\[([ xX])\]\s+(\S.*)", re.DOTALL)
_HEADING_ID = re.compile(r"\s*\{#([^}]*)\}\s*$")
_IDENTIFIER = re.compile(IDENTIFIER)
_ID_LINE = re.compile(r"^id:[ \t]*[\"']?([^\s\"'#]+)", re.MULTILINE)
_FIELDS = frozenset(FrontMatter.model_fields)


@dataclass(frozen=True)
class Reading:
    """A document read as far as it can be: every problem in it, the runbook found, what is unread.

    `runbook` is None only when the file cannot be read at all; otherwise it holds every item
    that could be read, and stand-ins in its front matter for the keys `unread` names. It is
    runnable only when there are no problems.
    """

    problems: tuple[Problem, ...]
    runbook: Runbook | None
    unread: Unread = field(default_factory=Unread)


def parse_runbook(path: Path, text: str | None = None) -> Runbook:
    """Parse one runbook document (read from `path` unless `text` is given).

    Raises RunbookError carrying every problem found in the file, not just the first.
    """
    reading = read_runbook(path, text)
    if reading.problems or reading.runbook is None:
        raise RunbookError(list(reading.problems))
    return reading.runbook


def read_runbook(path: Path, text: str | None = None) -> Reading:
    """Read one runbook document without stopping at its problems (see `Reading`)."""
    try:
        raw = path.read_bytes() if text is None else text.encode("utf-8")
        source = raw.decode("utf-8")
    except (OSError, UnicodeError) as error:
        return Reading((Problem(path, None, f"cannot read runbook: {error}"),), None)
    reader = _Reader(path)
    tokens = block_tokens(source)
    meta, meta_lines, unread_meta = reader.front_matter(tokens, source)
    runbook = Runbook(
        meta=meta,
        items=tuple(reader.items(tokens, meta.title)),
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        text=source,
        meta_lines=meta_lines,
    )
    # A broken block whose id another item has is a duplicate: that id is there to be used.
    broken = frozenset(reader.unread_items) - {item.id for item in runbook.items}
    unread = Unread(front_matter=unread_meta, items=broken)
    return Reading(tuple(reader.problems), runbook, unread)


def find_runbook_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given; folders searched recursively for `*.md` except README.md and hidden paths."""
    found: dict[Path, None] = {}
    for path in paths:
        if not path.is_dir():
            found[path] = None
            continue
        in_folder: list[Path] = []
        for folder, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            in_folder.extend(
                Path(folder, name)
                for name in files
                if name.endswith(".md") and not name.startswith(".") and name.lower() != "readme.md"
            )
        found.update(dict.fromkeys(sorted(in_folder)))
    return list(found)


def slug(text: str) -> str:
    """A heading as an id: lowercase, runs of other characters turned into '-', trimmed."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _raw_title(raw_meta: dict[str, Any], path: Path) -> str:
    title = raw_meta.get("title")
    return title if isinstance(title, str) else path.stem


def _stand_in(title: str, kept: dict[str, Any] | None = None) -> FrontMatter:
    """Front matter whose required keys hold placeholders where `kept` has no readable value."""
    placeholders = {"id": "unread", "kind": "other", "severity": "sev5", "version": 1, "owner": ""}
    return FrontMatter.model_validate({**placeholders, "title": title, **(kept or {})})


def _readable_front_matter(
    raw: dict[str, Any], error: ValidationError, title: str
) -> tuple[FrontMatter, frozenset[str]]:
    """The front matter without its bad keys, and those keys: the body is still checked.

    A bad input leaves the other inputs declared, so references to them are still checked.
    """
    kept = {key: value for key, value in raw.items() if key in _FIELDS}
    unread: set[str] = set()
    for detail in error.errors():
        loc = tuple(str(part) for part in detail["loc"])
        if not loc or loc[0] not in _FIELDS:
            continue  # an unknown key: left out of `kept`, and nothing depends on it
        inputs = kept.get("inputs")
        if loc[0] == "inputs" and len(loc) > 1 and isinstance(inputs, dict):
            kept["inputs"] = {name: spec for name, spec in inputs.items() if name != loc[1]}
            unread.add(f"inputs.{loc[1]}")
        else:
            kept.pop(loc[0], None)
            unread.add(loc[0])
    return _stand_in(title, kept), frozenset(unread)


@dataclass
class _GateDraft:
    id: str
    title: str
    heading_line: int
    explicit: bool
    items: list[str] = field(default_factory=list)
    line: int = 0
    policy: _PolicyDraft | None = None


@dataclass(frozen=True)
class _PolicyDraft:
    """A ```gate fence read from a section, waiting for (or given to) that section's gate."""

    policy: GatePolicy | None
    line: int
    key_lines: dict[str, int]


@dataclass
class _Reader:
    """Collects items and problems while walking one document's tokens."""

    path: Path
    problems: list[Problem] = field(default_factory=list)
    unread_items: set[str] = field(default_factory=set)

    def front_matter(
        self, tokens: list[Token], source: str
    ) -> tuple[FrontMatter, dict[str, int], frozenset[str]]:
        """The front matter (stand-ins where unreadable), its key lines and its unread keys."""
        block = tokens[0] if tokens and tokens[0].type == "front_matter" else None
        if block is None:
            unclosed = source.startswith("---")
            message = "front matter is not closed" if unclosed else "missing front matter"
            hint = (
                "add a `---` line after the front matter"
                if unclosed
                else "start the file with `---`, the YAML front matter (id, title, ...), `---`"
            )
            self.problems.append(Problem(self.path, 1, message, hint))
            return _stand_in(self.path.stem), {}, _FIELDS
        lines: dict[str, int] = {}
        before = len(self.problems)
        raw = self.yaml(block.content, _content_line(block), lines, "front matter")
        if not isinstance(raw, dict):
            if len(self.problems) == before:
                self.problems.append(
                    Problem(
                        self.path,
                        _content_line(block),
                        "front matter must be a YAML mapping",
                        "write `id:`, `title:`, `kind:`, `severity:`, `version:` and `owner:`",
                    )
                )
            return _stand_in(self.path.stem), lines, _FIELDS
        try:
            return FrontMatter.model_validate(raw), lines, frozenset()
        except ValidationError as error:
            self.problems.extend(
                validation_problems(
                    error, FrontMatter, path=self.path, what="front matter", lines=lines, line=1
                )
            )
            meta, unread = _readable_front_matter(raw, error, _raw_title(raw, self.path))
            return meta, lines, unread

    def items(self, tokens: list[Token], runbook_title: str) -> list[Item]:
        items: list[Step | _GateDraft] = []
        title, heading_id, heading_line = runbook_title, "", 1
        gate: _GateDraft | None = None
        # A ```gate fence may come before its section's checklist: it waits here for the gate.
        policy: _PolicyDraft | None = None
        bullets: list[bool] = []
        for index, token in enumerate(tokens):
            if token.type == "heading_open":
                self._check_policy_placed(policy, gate)
                title, heading_id = _heading(tokens[index + 1].content)
                heading_line = _open_line(token)
                gate, policy = None, None
                self._check_heading_id(heading_id, heading_line)
            elif token.type in ("bullet_list_open", "ordered_list_open"):
                bullets.append(token.type == "bullet_list_open")
            elif token.type in ("bullet_list_close", "ordered_list_close"):
                bullets.pop()
            elif token.type == "fence" and token.info.strip() == "step":
                step = self.step(token, title)
                if step is not None:
                    items.append(step)
            elif token.type == "fence" and token.info.strip() == "gate":
                if policy is not None:
                    self.problems.append(
                        Problem(
                            self.path,
                            _open_line(token),
                            f"a second ```gate fence in the section '{title}'"
                            f" (the first is at line {policy.line})",
                            "write one ```gate fence per gate",
                        )
                    )
                    continue
                policy = self.policy(token)
                if gate is not None:
                    gate.policy = policy
            elif (
                token.type == "inline" and bullets and bullets[-1] and _first_in_item(tokens, index)
            ):
                box = _CHECKBOX.match(token.content)
                if box is None:
                    continue
                if gate is None:
                    gate = _GateDraft(
                        heading_id or slug(title), title, heading_line, bool(heading_id)
                    )
                    gate.line = _open_line(token)
                    gate.policy = policy
                    items.append(gate)
                gate.items.append(" ".join(box.group(2).split()))
        self._check_policy_placed(policy, gate)
        return self._unique(items)

    def _check_policy_placed(self, policy: _PolicyDraft | None, gate: _GateDraft | None) -> None:
        """A section's ```gate fence needs that section's checklist: it has nothing to govern."""
        if policy is not None and gate is None:
            self.problems.append(
                Problem(
                    self.path,
                    policy.line,
                    "a ```gate fence outside any gate",
                    "put it in the section of the gate it governs: under the heading whose"
                    " `- [ ]` checklist is the gate",
                )
            )

    def policy(self, token: Token) -> _PolicyDraft:
        """Read one ```gate fence; its policy is None (with a problem) when it is broken."""
        lines: dict[str, int] = {}
        fence_line = _open_line(token)
        before = len(self.problems)
        data = self.yaml(token.content, _content_line(token), lines, "gate")
        if data is None and len(self.problems) == before:
            data = {}  # an empty fence: the defaults, anyone may pass it
        if not isinstance(data, dict):
            if len(self.problems) == before:
                self.problems.append(
                    Problem(
                        self.path,
                        fence_line,
                        "a ```gate fence must be a YAML mapping",
                        "write e.g. `approvers: {roles: [security]}` inside the fence",
                    )
                )
            return _PolicyDraft(None, fence_line, lines)
        try:
            found = GatePolicy.model_validate(data)
        except ValidationError as error:
            self.problems.extend(
                validation_problems(
                    error, GatePolicy, path=self.path, what="gate", lines=lines, line=fence_line
                )
            )
            return _PolicyDraft(None, fence_line, lines)
        return _PolicyDraft(found, fence_line, lines)

    def step(self, token: Token, title: str) -> Step | None:
        lines: dict[str, int] = {}
        fence_line = _open_line(token)
        before = len(self.problems)
        data = self.yaml(token.content, _content_line(token), lines, "step")
        if not isinstance(data, dict):
            if len(self.problems) == before:
                self.problems.append(
                    Problem(
                        self.path,
                        fence_line,
                        "a step must be a YAML mapping",
                        "write at least `id: <step-id>` and `uses: <action>` inside the fence",
                    )
                )
            # The `id:` line usually survives a YAML mistake elsewhere in the block.
            found = _ID_LINE.search(token.content)
            if found is not None:
                self.unread_items.add(found.group(1))
            return None
        step_id = data.get("id")
        what = f"step '{step_id}'" if isinstance(step_id, str) else "step"
        try:
            spec = StepSpec.model_validate(data)
        except ValidationError as error:
            self.problems.extend(
                validation_problems(
                    error, StepSpec, path=self.path, what=what, lines=lines, line=fence_line
                )
            )
            if isinstance(step_id, str):
                self.unread_items.add(step_id)
            return None
        return Step(spec=spec, title=title, line=fence_line, key_lines=lines)

    def yaml(self, source: str, first_line: int, lines: dict[str, int], what: str) -> Any:
        """Load one YAML block; record key lines; on error add a Problem and return None."""
        try:
            return load_yaml(source, first_line, lines)
        except YamlProblem as problem:
            self.problems.append(
                Problem(self.path, problem.line, f"{what}: {problem.message}", problem.hint)
            )
            return None

    def _check_heading_id(self, heading_id: str, line: int) -> None:
        if heading_id and not _IDENTIFIER.match(heading_id):
            self.problems.append(
                Problem(
                    self.path,
                    line,
                    f"heading id '{heading_id}' is not a valid id",
                    "ids use lowercase letters, digits, '-' and '_', e.g. {#contain-leak}",
                )
            )

    def _unique(self, drafts: list[Step | _GateDraft]) -> list[Item]:
        """The items with an id of their own; a problem for every other one, which is left out."""
        seen: dict[str, int] = {}
        kept: list[Item] = []
        for draft in drafts:
            if isinstance(draft, _GateDraft):
                policy = draft.policy
                item: Item = Gate(
                    id=draft.id,
                    title=draft.title,
                    items=tuple(draft.items),
                    line=draft.line,
                    policy=policy.policy if policy else None,
                    policy_line=policy.line if policy else None,
                    key_lines=policy.key_lines if policy else {},
                )
                line, renamable = draft.heading_line, not draft.explicit
            else:
                item, line, renamable = draft, draft.key_lines.get("id", draft.line), False
            if not item.id:
                self.problems.append(
                    Problem(
                        self.path,
                        line,
                        f"cannot make a gate id from the heading '{item.title}'",
                        "add an explicit id at the end of the heading, e.g. {#contain}",
                    )
                )
            elif item.id in seen:
                hint = (
                    f"rename it or add an explicit id to the heading, e.g. {{#{item.id}-2}}"
                    if renamable
                    else "ids must be unique across steps and gates"
                )
                message = f"duplicate id '{item.id}' (first used at line {seen[item.id]})"
                self.problems.append(Problem(self.path, line, message, hint))
            else:
                seen[item.id] = line
                kept.append(item)
        return kept


def _heading(content: str) -> tuple[str, str]:
    """A heading's title and its explicit `{#id}` ('' when none)."""
    match = _HEADING_ID.search(content)
    if match is None:
        return content.strip(), ""
    return content[: match.start()].strip(), match.group(1).strip()


def _first_in_item(tokens: list[Token], index: int) -> bool:
    """True for the inline text of a list item's first paragraph (where its checkbox is)."""
    return (
        index >= 2
        and tokens[index - 1].type == "paragraph_open"
        and tokens[index - 2].type == "list_item_open"
    )


def _open_line(token: Token) -> int:
    return token.map[0] + 1 if token.map else 1


def _content_line(token: Token) -> int:
    """File line of a fence's (or the front matter's) first content line: after its opening line."""
    return _open_line(token) + 1
