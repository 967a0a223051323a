"""The sandboxed Jinja2 environments that render every runbook template.

Templates come from documents and are treated as untrusted; values (alert payloads above all)
are data: a render's output is never rendered again. Rendering is deterministic, so a resumed
run renders the same arguments as the first attempt.

An action argument whose text is markup (a Slack message, a Jira description) is marked
`Escaped` in its model: its templates render with Jinja's autoescaping, through that markup's own
escape function. What the template says stays markup (a `<!here>` written in it still
notifies); every value it interpolates is escaped, unless the template marks it `| trusted`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    nodes,
)
from jinja2.environment import TemplateExpression
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from markupsafe import Markup
from pydantic import BaseModel

ROOTS = frozenset({"inputs", "alert", "incident", "steps"})
"""The names a step template can start from; alert trigger templates may use only `alert`."""

_FALSY = frozenset({"", "false", "0", "no", "off", "none"})
_MAX_REPEAT = 100_000
_MAX_EXPONENT = 1_000
_EVALUATION_ERRORS = (
    TemplateError,
    ArithmeticError,
    LookupError,
    TypeError,
    ValueError,
    RecursionError,
)
"""What evaluating an untrusted template can raise besides undefined names and sandbox refusals."""


Escape = Callable[[str], str]
"""Turns text into markup that shows it as it is (`&` -> `&amp;` for Slack, say)."""


@dataclass(frozen=True)
class Escaped:
    """Marks an action argument as markup: the values its templates interpolate are escaped.

    `text: Annotated[str, Escaped(escape_mrkdwn)]`. Strings nested in the argument (Block Kit
    blocks) are escaped the same way.
    """

    escape: Escape


class TemplateFailure(Exception):
    """A template could not be rendered: undefined name, sandbox violation, bad syntax or value."""


@dataclass(frozen=True)
class Reference:
    """A variable use: `{{ steps.ticket.key }}` is Reference("steps", ("ticket", "key"))."""

    root: str
    path: tuple[str, ...] = ()

    def __str__(self) -> str:
        return ".".join((self.root, *self.path))


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, plus limits on `*` and `**` so a template cannot exhaust memory or CPU."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and right > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is larger than {_MAX_EXPONENT}")
        if operator == "*" and _repeated_size(left, right) > _MAX_REPEAT:
            raise SecurityError(f"repetition makes more than {_MAX_REPEAT} items")
        return super().call_binop(context, operator, left, right)


def _repeated_size(left: Any, right: Any) -> int:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(times, int) and isinstance(sequence, str | list | tuple):
            return len(sequence) * times
    return 0


def _deterministic(env: _Sandbox) -> _Sandbox:
    # Random output would make a resumed run render different arguments than the first attempt.
    del env.globals["lipsum"]
    del env.filters["random"]
    return env


_ENV = _deterministic(
    _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
)
# Where nothing is escaped, `trusted` changes nothing: the same template works in any argument.
_ENV.filters["trusted"] = lambda value: value
GLOBALS = frozenset(_ENV.globals)
"""Names every template may use besides its roots (range, dict, cycler, joiner, namespace)."""


@lru_cache(maxsize=16)
def _escaping(escape: Escape) -> _Sandbox:
    """The environment for arguments escaped with `escape`: Jinja's autoescaping, our escape.

    Jinja keeps what a template says apart from what it interpolates by wrapping the first in
    `Markup`. `Trusted` is that `Markup` for this kind of markup: a value that reaches the output
    as anything else is escaped by `finalize`, and Markup's own operations (`+`, `%`) escape
    their operands with `escape` too, never with HTML's rules.
    """

    class Trusted(Markup):
        """Text that is already markup: the template's own, or a value marked `| trusted`."""

        __slots__ = ()

        @classmethod
        def escape(cls, s: Any) -> Trusted:
            if hasattr(s, "__html__"):
                return cls(s.__html__())
            return cls(escape(str(s)))

    def finalize(value: Any) -> Any:
        # Every `{{ ... }}` passes here, `{% autoescape false %}` blocks included. A Markup is
        # the template's own text (a `{% set %}` block, a macro) or a value marked trusted.
        return value if hasattr(value, "__html__") else Trusted.escape(value)

    env = _deterministic(
        _Sandbox(
            undefined=StrictUndefined,
            autoescape=True,
            finalize=finalize,
            keep_trailing_newline=True,
        )
    )
    env.filters.update(
        trusted=Trusted,
        safe=Trusted,
        e=Trusted.escape,
        escape=Trusted.escape,
        forceescape=lambda value: Trusted(escape(str(value))),
        # Jinja's own versions return HTML as Markup, which would pass as trusted here.
        tojson=lambda value, indent=None: json.dumps(value, indent=indent, sort_keys=True),
    )
    for html_only in ("urlize", "xmlattr"):
        del env.filters[html_only]
    return env


def is_template(text: str) -> bool:
    """True when the string has Jinja markup; plain strings render to themselves."""
    return "{{" in text or "{%" in text or "{#" in text


def render(
    template: str,
    context: Mapping[str, Any],
    *,
    where: str = "",
    escape: Escape | None = None,
) -> str:
    """Render one template string in the sandbox; raise TemplateFailure saying what went wrong.

    `where` names the template's place for messages, e.g. "step 'ticket'". With `escape`, the
    output is markup: interpolated values are escaped with it unless marked `| trusted`.
    """
    if not is_template(template):
        return template
    try:
        compiled = _compile(template, escape)
    except TemplateSyntaxError as error:
        raise TemplateFailure(_syntax_message(error, where)) from None
    return _run(lambda: compiled.render(context), template, context, where)


def render_value(
    value: Any, context: Mapping[str, Any], *, where: str = "", escape: Escape | None = None
) -> Any:
    """Render every string inside dicts and lists (keys stay as written); other values unchanged."""
    if isinstance(value, str):
        return render(value, context, where=where, escape=escape)
    if isinstance(value, Mapping):
        return {
            key: render_value(item, context, where=where, escape=escape)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(
            render_value(item, context, where=where, escape=escape) for item in value
        )
    return value


def render_arguments(
    arguments: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    where: str = "",
    escapes: Mapping[str, Escape] | None = None,
    shown: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Render a step's `with:`: each argument named in `escapes` as markup, the rest as text.

    Markup is what people read, so its templates see the context through `shown` (the run's
    redaction): a secret is masked before it is escaped, which would otherwise hide it from
    the redaction applied to the finished text.
    """
    escapes = escapes or {}
    people: Mapping[str, Any] | None = None
    rendered: dict[str, Any] = {}
    for name, value in arguments.items():
        escape = escapes.get(name)
        if escape is None:
            rendered[name] = render_value(value, context, where=where)
            continue
        if people is None:
            people = shown(context) if shown is not None else context
        rendered[name] = render_value(value, people, where=where, escape=escape)
    return rendered


def escapes_of(model: type[BaseModel]) -> dict[str, Escape]:
    """The escape of each argument of an action's model that is marked `Escaped`."""
    return {
        name: marker.escape
        for name, field in model.model_fields.items()
        for marker in field.metadata
        if isinstance(marker, Escaped)
    }


def evaluate(expression: str, context: Mapping[str, Any], *, where: str = "") -> bool:
    """The truth of an `if:`: a bare expression (`inputs.x == 'y'`) or a `{{ ... }}` template.

    A template's output is false when it is empty, `false`, `0`, `no`, `off` or `none`.
    """
    if is_template(expression):
        return render(expression, context, where=where).strip().lower() not in _FALSY
    try:
        _expression_references(expression)  # same syntax messages as `runbook validate` gives
        compiled = _compile_expression(expression)
    except TemplateSyntaxError as error:
        raise TemplateFailure(_syntax_message(error, where)) from None
    return _run(lambda: bool(compiled(context)), expression, context, where, expression=True)


def evaluate_value(expression: str, context: Mapping[str, Any], *, where: str = "") -> Any:
    """The value of a bare expression, or of one `{{ ... }}` holding nothing else (a list stays a
    list); a template with text around its expressions gives the text it renders."""
    text = expression.strip()
    sole = _sole_expression(text)
    if sole is None and is_template(text):
        return render(text, context, where=where)
    source = text if sole is None else sole
    try:
        _expression_references(source)  # same syntax messages as `runbook validate` gives
        compiled = _compile_expression(source)
    except TemplateSyntaxError as error:
        raise TemplateFailure(_syntax_message(error, where)) from None

    def value() -> Any:
        found = compiled(context)
        if isinstance(found, Undefined):
            raise UndefinedError(f"{source} is undefined")  # named by _run, from its references
        return found

    return _run(value, source, context, where, expression=True)


def _sole_expression(text: str) -> str | None:
    """`x` for a template that is `{{ x }}` and nothing else; None otherwise."""
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        inner = text[2:-2]
        if "}}" not in inner and "{%" not in inner and "{#" not in inner:
            return inner.strip()
    return None


def references(template: str) -> list[Reference]:
    """Each distinct variable use in a template, in order; names the template binds are left out.

    Raises jinja2.TemplateSyntaxError (with `lineno`) when the template does not parse.
    """
    return list(_template_references(template)) if is_template(template) else []


def condition_references(expression: str) -> list[Reference]:
    """Like `references`, for an `if:` value (a bare expression or a template)."""
    if is_template(expression):
        return references(expression)
    return list(_expression_references(expression))


@lru_cache(maxsize=4096)
def _compile(template: str, escape: Escape | None = None) -> Template:
    return (_ENV if escape is None else _escaping(escape)).from_string(template)


@lru_cache(maxsize=4096)
def _compile_expression(expression: str) -> TemplateExpression:
    return _ENV.compile_expression(expression, undefined_to_none=False)


@lru_cache(maxsize=4096)
def _template_references(template: str) -> tuple[Reference, ...]:
    return _references(_ENV.parse(template))


@lru_cache(maxsize=4096)
def _expression_references(expression: str) -> tuple[Reference, ...]:
    return _references(_parse_expression(expression))


def _parse_expression(expression: str) -> nodes.Template:
    parser = Parser(_ENV, expression, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        token = parser.stream.current
        raise TemplateSyntaxError(f"unexpected '{token.value}'", token.lineno)
    return nodes.Template([nodes.Output([expr])])


def _run(
    call: Callable[[], Any],
    source: str,
    context: Mapping[str, Any],
    where: str,
    *,
    expression: bool = False,
) -> Any:
    subject = f"template in {where}" if where else "template"
    try:
        return call()
    except SecurityError as error:
        raise TemplateFailure(f"{subject} is not allowed: {error}") from None
    except UndefinedError as error:
        refs = condition_references(source) if expression else references(source)
        missing = next((ref for ref in refs if not _resolves(ref, context)), None)
        if missing is not None:
            raise TemplateFailure(f"{subject} uses undefined '{missing}'") from None
        raise TemplateFailure(f"{subject} failed: {error}") from None
    except _EVALUATION_ERRORS as error:
        raise TemplateFailure(f"{subject} failed: {error}") from None


def _resolves(ref: Reference, context: Mapping[str, Any]) -> bool:
    value: Any = context
    for part in (ref.root, *ref.path):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif not isinstance(value, Mapping) and not part.startswith("_") and hasattr(value, part):
            value = getattr(value, part)
        else:
            return False
    return True


def _syntax_message(error: TemplateSyntaxError, where: str) -> str:
    subject = f"template in {where}" if where else "template"
    return f"{subject} has a syntax error on its line {error.lineno}: {error.message}"


def _references(tree: nodes.Template) -> tuple[Reference, ...]:
    walk = _Walk()
    walk.visit(tree)
    return tuple(dict.fromkeys(ref for ref in walk.found if ref.root not in walk.bound))


class _Walk:
    """One pass over a template's AST: the variables it reads and the names it binds itself."""

    def __init__(self) -> None:
        self.found: list[Reference] = []
        self.bound: set[str] = set()

    def visit(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            # `alert.labels.get('x')`: the receiver is the reference, not the method name.
            self.visit(node.node.node)
            for argument in (*node.args, *node.kwargs, node.dyn_args, node.dyn_kwargs):
                if argument is not None:
                    self.visit(argument)
            return
        if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
            self.visit_chain(node)
            return
        if isinstance(node, nodes.For):
            self.bound.add("loop")
        elif isinstance(node, nodes.Macro | nodes.CallBlock):
            self.bound.update(("varargs", "kwargs", "caller"))
            if isinstance(node, nodes.Macro):
                self.bound.add(node.name)
        for child in node.iter_child_nodes():
            self.visit(child)

    def visit_chain(self, node: nodes.Expr) -> None:
        """Record `a.b['c']` as one reference; dynamic subscripts end the known path."""
        parts: list[str] = []
        current: nodes.Node = node
        while isinstance(current, nodes.Getattr | nodes.Getitem):
            if isinstance(current, nodes.Getattr):
                parts.append(current.attr)
            elif isinstance(current.arg, nodes.Const) and isinstance(current.arg.value, str):
                parts.append(current.arg.value)
            else:
                parts.clear()
                self.visit(current.arg)
            current = current.node
        if not isinstance(current, nodes.Name):
            self.visit(current)
        elif current.ctx == "load":
            self.found.append(Reference(current.name, tuple(reversed(parts))))
        else:
            self.bound.add(current.name)
