"""YAML blocks read into plain Python values, with the file line of every key.

libyaml parses, with the YAML 1.2 core schema so `yes`, `on`, `1:30` and dates stay strings;
the nodes are built here so each dotted key path (`with.labels.0`) is known by its file line,
and a block that expands without bound (an alias bomb) is refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

_MAX_YAML_NODES = 10_000
"""Aliases can make a tiny document expand exponentially; no runbook block needs this many."""


class YamlProblem(Exception):
    """A YAML block that cannot be read, at its file line; callers turn it into a Problem."""

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
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            # The composer makes scalars, mappings and sequences only: this is a sequence.
            return [self._child(child, (*path, str(i))) for i, child in enumerate(node.value)]
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
