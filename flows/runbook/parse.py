"""Read a runbook document into a Runbook: front matter, ```step fences and checklist gates.

Markdown-it gives block tokens with line maps; YAML nodes give positions inside each block, so
every key of every step is known by its file line and every problem points at it. Prose is kept
in `Runbook.text` and never run.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import yaml
from markdown_it_pyrs import MarkdownIt
from pydantic import ValidationError

from flows.errors import Problem, RunbookError
from flows.runbook.model import IDENTIFIER, FrontMatter, Gate, Item, Runbook, Step, StepSpec
from flows.runbook.schema import validation_problems

# markdown-it.rs (through markdown-it-pyrs) parses CommonMark about ten times faster than the
# pure-Python parser, which `runbook validate` over a whole library feels. Its tree is turned
# into the few block tokens this module reads: front matter, headings, lists and their first
# paragraph, and fences. Blockquotes and HTML blocks are not entered: a step or checklist quoted
# or inside an HTML comment is prose, not something to run.
_MARKDOWN = MarkdownIt("commonmark").enable("front_matter")
_INLINE_BLOCKS = frozenset(
    {
        "paragraph",
        "bullet_list",
        "ordered_list",
        "fence",
        "code_block",
        "html_block",
        "heading",
        "lheading",
        "blockquote",
        "hr",
    }
)


class Token(NamedTuple):
    """The part of a Markdown block token this module reads (markdown-it's own names)."""

    type: str
    map: tuple[int, int] | None = None
    content: str = ""
    info: str = ""


class _Source:
    """Byte offsets (markdown-it.rs source maps) to 0-based lines and text."""

    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8")
        self.starts = [0, *itertools.accumulate(len(line) + 1 for line in self.data.split(b"\n"))]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def span(self, node: Any) -> tuple[int, int]:
        begin, end = node.srcmap
        return self.line(begin), self.line(max(begin, end - 1)) + 1

    def text(self, begin: int, end: int) -> str:
        return self.data[begin:end].decode("utf-8", errors="replace")


def _heading_text(source: _Source, node: Any) -> str:
    raw = source.text(*node.srcmap)
    if node.name == "lheading":  # the underline is the last line
        return " ".join(raw.rstrip("\n").split("\n")[:-1]).strip()
    line = raw.split("\n", 1)[0].strip().lstrip("#")
    closing = re.search(r"\s+#+\s*$", line)
    return (line[: closing.start()] if closing else line).strip()


def _item_text(source: _Source, item: Any) -> tuple[str, int] | None:
    """The raw text of a list item's first paragraph and its 0-based line."""
    children = list(item.children)
    if not children:
        return None
    if children[0].name == "paragraph":
        node = children[0]
        return source.text(*node.srcmap), source.line(node.srcmap[0])
    inline = []
    for child in children:  # a tight item: its first paragraph's inline nodes, unwrapped
        if child.name in _INLINE_BLOCKS:
            break
        inline.append(child)
    if not inline:
        return None
    begin, end = inline[0].srcmap[0], inline[-1].srcmap[1]
    return source.text(begin, end), source.line(begin)


def _tokens(text: str) -> list[Token]:
    """The block tokens of a document, in order, with 0-based [begin, end) line maps."""
    source = _Source(text)
    tokens: list[Token] = []

    def walk(node: Any) -> None:
        for child in node.children:
            name = child.name
            if name == "front_matter":
                tokens.append(Token("front_matter", source.span(child), child.meta["content"]))
            elif name in ("heading", "lheading"):
                tokens.append(Token("heading_open", source.span(child)))
                tokens.append(Token("inline", None, _heading_text(source, child)))
            elif name == "fence":
                meta = child.meta
                tokens.append(
                    Token(
                        "fence", source.span(child), meta.get("content", ""), meta.get("info", "")
                    )
                )
            elif name in ("bullet_list", "ordered_list"):
                tokens.append(Token(f"{name}_open"))
                for item in child.children:
                    tokens.append(Token("list_item_open"))
                    first = _item_text(source, item)
                    if first is not None and first[0].startswith("["):  # only checkboxes matter
                        tokens.append(Token("paragraph_open", (first[1], first[1] + 1)))
                        tokens.append(Token("inline", (first[1], first[1] + 1), first[0]))
                    walk(item)
                tokens.append(Token(f"{name}_close"))
            # Anything else is a skipped block or inline content: nothing in it is read.

    walk(_MARKDOWN.tree(text))
    return tokens


_CHECKBOX = re.compile(r"\[([ xX])\]\s+(\S.*)", re.DOTALL)
_HEADING_ID = re.compile(r"\s*\{#([^}]*)\}\s*$")
_IDENTIFIER = re.compile(IDENTIFIER)
_MAX_YAML_NODES = 10_000
"""Aliases can make a tiny document expand exponentially; no runbook block needs this many."""


def parse_runbook(path: Path, text: str | None = None) -> Runbook:
    """Parse one runbook document (read from `path` unless `text` is given).

    Raises RunbookError carrying every problem found in the file, not just the first.
    """
    try:
        raw = path.read_bytes() if text is None else text.encode("utf-8")
        source = raw.decode("utf-8")
    except (OSError, UnicodeError) as error:
        raise RunbookError(Problem(path, 0, f"cannot read runbook: {error}")) from None
    reader = _Reader(path)
    tokens = _tokens(source)
    meta, meta_lines = reader.front_matter(tokens, source)
    fallback_title = meta.title if meta else _raw_title(reader.raw_meta, path)
    items = reader.items(tokens, fallback_title)
    if reader.problems or meta is None:
        raise RunbookError(reader.problems)
    return Runbook(
        meta=meta,
        items=tuple(items),
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        text=source,
        meta_lines=meta_lines,
    )


def find_runbook_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given; folders searched recursively for `*.md` except README.md and hidden paths."""
    found: dict[Path, None] = {}
    for path in paths:
        if not path.is_dir():
            found[path] = None
            continue
        in_folder = []
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


def _raw_title(raw_meta: Any, path: Path) -> str:
    title = raw_meta.get("title") if isinstance(raw_meta, dict) else None
    return title if isinstance(title, str) else path.stem


@dataclass
class _GateDraft:
    id: str
    title: str
    heading_line: int
    explicit: bool
    items: list[str] = field(default_factory=list)
    line: int = 0


@dataclass
class _Reader:
    """Collects items and problems while walking one document's tokens."""

    path: Path
    problems: list[Problem] = field(default_factory=list)
    raw_meta: Any = None

    def front_matter(self, tokens: list[Token], source: str) -> tuple[FrontMatter | None, dict]:
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
            return None, {}
        lines: dict[str, int] = {}
        before = len(self.problems)
        self.raw_meta = self.yaml(block.content, _content_line(block), lines, "front matter")
        if not isinstance(self.raw_meta, dict):
            if len(self.problems) == before:
                self.problems.append(
                    Problem(
                        self.path,
                        _content_line(block),
                        "front matter must be a YAML mapping",
                        "write `id:`, `title:`, `kind:`, `severity:`, `version:` and `owner:`",
                    )
                )
            return None, lines
        try:
            return FrontMatter.model_validate(self.raw_meta), lines
        except ValidationError as error:
            self.problems.extend(
                validation_problems(
                    error, FrontMatter, path=self.path, what="front matter", lines=lines, line=1
                )
            )
            return None, lines

    def items(self, tokens: list[Token], runbook_title: str) -> list[Item]:
        items: list[Item | _GateDraft] = []
        title, heading_id, heading_line = runbook_title, "", 1
        gate: _GateDraft | None = None
        bullets: list[bool] = []
        for index, token in enumerate(tokens):
            if token.type == "heading_open":
                title, heading_id = _heading(tokens[index + 1].content)
                heading_line = _open_line(token)
                gate = None
                self._check_heading_id(heading_id, heading_line)
            elif token.type in ("bullet_list_open", "ordered_list_open"):
                bullets.append(token.type == "bullet_list_open")
            elif token.type in ("bullet_list_close", "ordered_list_close"):
                bullets.pop()
            elif token.type == "fence" and token.info.strip() == "step":
                step = self.step(token, title)
                if step is not None:
                    items.append(step)
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
                    items.append(gate)
                gate.items.append(" ".join(box.group(2).split()))
        built = [self._gate(i) if isinstance(i, _GateDraft) else i for i in items]
        self._check_duplicates(items)
        return built

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

    def _gate(self, draft: _GateDraft) -> Gate:
        return Gate(id=draft.id, title=draft.title, items=tuple(draft.items), line=draft.line)

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

    def _check_duplicates(self, items: list[Item | _GateDraft]) -> None:
        seen: dict[str, int] = {}
        for item in items:
            is_gate = isinstance(item, _GateDraft)
            line = item.heading_line if is_gate else item.key_lines.get("id", item.line)
            if is_gate and not item.id:
                self.problems.append(
                    Problem(
                        self.path,
                        line,
                        f"cannot make a gate id from the heading '{item.title}'",
                        "add an explicit id at the end of the heading, e.g. {#contain}",
                    )
                )
                continue
            if item.id in seen:
                hint = (
                    f"rename it or add an explicit id to the heading, e.g. {{#{item.id}-2}}"
                    if is_gate and not item.explicit
                    else "ids must be unique across steps and gates"
                )
                message = f"duplicate id '{item.id}' (first used at line {seen[item.id]})"
                self.problems.append(Problem(self.path, line, message, hint))
            else:
                seen[item.id] = line


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


class YamlProblem(Exception):
    def __init__(self, line: int, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.line, self.message, self.hint = line, message, hint


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser with the YAML 1.2 core schema: `yes`, `on`, `1:30`, dates stay strings."""

    yaml_implicit_resolvers: ClassVar[dict] = {}

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        # PyYAML's resolve also walks path resolvers, which this loader has none of; it runs once
        # per node, so the shortcut is felt when a whole library is validated.
        if kind is yaml.ScalarNode:
            if implicit[0]:
                for tag, pattern in self.yaml_implicit_resolvers.get(value[:1], ()):
                    if pattern.match(value):
                        return tag
            return _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


_NULL, _BOOL, _INT, _FLOAT, _STR, _SEQ, _MAP = (
    f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "str", "seq", "map")
)
_Loader.add_implicit_resolver(_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


def load_yaml(source: str, first_line: int, lines: dict[str, int]) -> Any:
    """Plain Python values from one YAML document, filling `lines` with dotted key -> file line."""
    loader = _Loader(source)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        # The context mark is where the broken construct starts (an unclosed bracket or quote);
        # the problem mark is only where the parser gave up.
        mark = error.context_mark or error.problem_mark
        line = first_line + (mark.line if mark else 0)
        text = " ".join(part for part in (error.context, error.problem) if part)
        if error.problem_mark and first_line + error.problem_mark.line != line:
            text += f" (noticed at line {first_line + error.problem_mark.line})"
        hint = "check indentation and quoting; quote values that start with {{, [, {, * or &"
        raise YamlProblem(line, f"bad YAML: {text}", hint) from None
    finally:
        loader.dispose()
    return _Builder(first_line, lines).build(node, ()) if node is not None else None


@dataclass
class _Builder:
    first_line: int
    lines: dict[str, int]
    count: int = 0
    active: set[int] = field(default_factory=set)

    def build(self, node: yaml.Node, path: tuple[str, ...]) -> Any:
        self.count += 1
        if self.count > _MAX_YAML_NODES:
            raise YamlProblem(self._line(node), "YAML block is too large (too many aliases?)")
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if id(node) in self.active:
            raise YamlProblem(self._line(node), "YAML alias refers to itself")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self._child(child, (*path, str(i))) for i, child in enumerate(node.value)]
            return self._mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: tuple[str, ...]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem(
                    self._line(key_node),
                    "a mapping key must be a plain name",
                    'an unquoted {{ template }} is read as a YAML mapping: quote it, "{{ ... }}"',
                )
            key = key_node.value
            if key in result:
                raise YamlProblem(self._line(key_node), f"duplicate key '{key}'")
            result[key] = self._child(value_node, (*path, key), key_line=self._line(key_node))
        return result

    def _child(self, node: yaml.Node, path: tuple[str, ...], key_line: int | None = None) -> Any:
        self.lines[".".join(path)] = key_line if key_line is not None else self._line(node)
        return self.build(node, path)

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        value = node.value
        if node.tag == _STR:
            return value
        if node.tag == _NULL:
            return None
        if node.tag == _BOOL:
            return value.lower() == "true"
        try:
            if node.tag == _INT:
                return int(value, 0) if value[:2] in ("0o", "0x") else int(value)
            if node.tag == _FLOAT:
                return _SPECIAL_FLOATS.get(value.lower()) or float(value)
        except ValueError:
            raise YamlProblem(
                self._line(node), f"{value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}"
            ) from None
        raise YamlProblem(
            self._line(node),
            f"unsupported YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')}",
            "use plain strings, numbers, booleans, lists and mappings",
        )

    def _line(self, node: yaml.Node) -> int:
        return self.first_line + node.start_mark.line
