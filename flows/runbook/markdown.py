"""A Markdown document as the few block tokens a runbook is read from, with their lines.

Front matter, headings, list items that start with a checkbox, and fences: everything else is
prose and is never run.
"""

from __future__ import annotations

import bisect
import itertools
import re
from typing import Any, NamedTuple

from markdown_it_pyrs import MarkdownIt

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


def block_tokens(text: str) -> list[Token]:
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
