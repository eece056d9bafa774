"""A small, safe filter-expression language over the columns of the clip table.

``flow_mean >= 0.5 and flow_mean <= 20 and text_area_ratio < 0.02`` is tokenised and parsed by
a hand-written recursive-descent parser into a tree of plain dataclasses; nothing is ever handed
to ``eval``/``exec``, and the only names an expression can reach are columns of the table.
Evaluation is vectorised with ``pyarrow.compute``, so a million-row table filters in
milliseconds.

Grammar (keywords are case-insensitive)::

    expr     := or
    or       := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | atom
    atom     := "(" expr ")" | predicate
    predicate:= operand ( ("<"|"<="|">"|">="|"=="|"="|"!=") operand
                        | ["not"] "between" operand "and" operand
                        | ["not"] "in" "(" literal ("," literal)* ")"
                        | "is" ["not"] "null" )?
    operand  := column | number | 'string' | "string" | true | false | null
    column   := identifier | `any name in backticks`

A bare boolean column (``transition_suspect``) is a predicate by itself.

Nulls follow SQL's three-valued logic (``null > 1`` is unknown, ``unknown or true`` is true,
``not unknown`` is unknown); a row whose whole expression is unknown *fails* (allow-list: an
unscored clip never slips through) unless ``keep_unscored`` is set. ``is null`` tests are always
definite.

Limits keep hostile input cheap and clear: at most :data:`MAX_LENGTH` characters,
:data:`MAX_TOKENS` tokens and :data:`MAX_DEPTH` levels of nesting; anything else (unknown
characters, Python syntax such as ``__import__('os')``, calls, attribute access) is one
:class:`ExpressionError` naming the position.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from clipsieve.errors import UserError

MAX_LENGTH = 4000
MAX_TOKENS = 1000
MAX_DEPTH = 32
MAX_IN_VALUES = 1000

KEYWORDS = {"and", "or", "not", "between", "in", "is", "null", "true", "false"}
COMPARISONS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "==", "=": "==", "!=": "!="}


class ExpressionError(UserError):
    """The filter expression cannot be parsed or does not fit the table (one line)."""


# ----------------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # "num" | "str" | "ident" | "kw" | "op" | "(" | ")" | "," | "end"
    value: Any
    pos: int


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<quoted>`[^`]+`)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|<|>|=)
  | (?P<punct>[(),])
  | (?P<minus>-)
    """,
    re.VERBOSE,
)


def _snippet(text: str, pos: int) -> str:
    """A short, printable excerpt of ``text`` at ``pos`` for an error line."""
    part = text[pos : pos + 20]
    return ascii(part)[1:-1] if part else "end of expression"


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, or raise :class:`ExpressionError` at the first bad character."""
    if not isinstance(text, str):
        raise ExpressionError(f"filter expression must be text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"filter expression is {len(text)} characters long; the limit is {MAX_LENGTH}"
        )
    tokens: list[Token] = []
    pos = 0
    negate_next = False
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ExpressionError(
                f"unexpected character at position {pos} ('{_snippet(text, pos)}') in filter "
                "expression: use column names, numbers, 'strings', comparisons, and/or/not, "
                "between, in (...), is null"
            )
        kind, raw = m.lastgroup, m.group()
        start, pos = pos, m.end()
        if kind == "ws":
            continue
        if kind == "minus":
            nxt = _TOKEN_RE.match(text, pos)
            if nxt is None or nxt.lastgroup != "num" or negate_next:
                raise ExpressionError(
                    f"'-' at position {start} must be followed by a number (no arithmetic in "
                    "filter expressions)"
                )
            negate_next = True
            continue
        if kind == "num":
            value: Any = float(raw) if any(c in raw for c in ".eE") else int(raw)
            if isinstance(value, float) and not math.isfinite(value):
                raise ExpressionError(f"number '{raw[:20]}' at position {start} is not finite")
            tokens.append(Token("num", -value if negate_next else value, start))
            negate_next = False
        elif kind == "str":
            body = raw[1:-1]
            tokens.append(Token("str", re.sub(r"\\(.)", r"\1", body), start))
        elif kind == "quoted":
            tokens.append(Token("ident", raw[1:-1], start))
        elif kind == "ident":
            low = raw.lower()
            tokens.append(
                Token("kw", low, start) if low in KEYWORDS else Token("ident", raw, start)
            )
        elif kind == "op":
            tokens.append(Token("op", COMPARISONS[raw], start))
        else:
            tokens.append(Token(raw, raw, start))
        if len(tokens) > MAX_TOKENS:
            raise ExpressionError(f"filter expression has more than {MAX_TOKENS} tokens")
    tokens.append(Token("end", None, len(text)))
    return tokens


# ------------------------------------------------------------------------------------- tree


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Literal:
    value: Any  # int | float | str | bool | None


Operand = Column | Literal


@dataclass(frozen=True)
class Compare:
    left: Operand
    op: str  # one of < <= > >= == !=
    right: Operand


@dataclass(frozen=True)
class Between:
    operand: Operand
    low: Operand
    high: Operand
    negated: bool = False


@dataclass(frozen=True)
class InList:
    operand: Operand
    values: tuple[Any, ...]
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    operand: Operand
    negated: bool = False


@dataclass(frozen=True)
class Truth:
    """A bare boolean column used as a predicate."""

    column: Column


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Compare | Between | InList | IsNull | Truth | Not | And | Or


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    # -- helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _is_kw(self, word: str) -> bool:
        return self.tok.kind == "kw" and self.tok.value == word

    def _error(self, expected: str) -> ExpressionError:
        tok = self.tok
        found = "end of expression" if tok.kind == "end" else f"'{_snippet(self.text, tok.pos)}'"
        return ExpressionError(
            f"filter expression: expected {expected} at position {tok.pos}, found {found}"
        )

    def _expect_kw(self, word: str) -> None:
        if not self._is_kw(word):
            raise self._error(f"'{word}'")
        self._advance()

    def _nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"filter expression nests deeper than {MAX_DEPTH} levels")

    # -- grammar
    def parse(self) -> Node:
        node = self._or()
        if self.tok.kind != "end":
            raise self._error("'and', 'or' or the end of the expression")
        return node

    def _or(self) -> Node:
        return self._chain("or", self._and, Or)

    def _and(self) -> Node:
        return self._chain("and", self._not, And)

    def _chain(self, keyword: str, operand: Callable[[], Node], node: type[And] | type[Or]) -> Node:
        """``operand (keyword operand)*``: one operand as is, several as one ``node``."""
        children = [operand()]
        while self._is_kw(keyword):
            self._advance()
            children.append(operand())
        return children[0] if len(children) == 1 else node(tuple(children))

    def _not(self) -> Node:
        if self._is_kw("not"):
            self._advance()
            self._nest()
            child = self._not()
            self.depth -= 1
            return Not(child)
        return self._atom()

    def _atom(self) -> Node:
        if self.tok.kind == "(":
            self._advance()
            self._nest()
            node = self._or()
            self.depth -= 1
            if self.tok.kind != ")":
                raise self._error("')'")
            self._advance()
            return node
        return self._predicate()

    def _operand(self) -> Operand:
        tok = self.tok
        if tok.kind == "ident":
            self._advance()
            return Column(tok.value)
        if tok.kind in ("num", "str"):
            self._advance()
            return Literal(tok.value)
        if tok.kind == "kw" and tok.value in ("true", "false", "null"):
            self._advance()
            return Literal({"true": True, "false": False, "null": None}[tok.value])
        raise self._error("a column name, number, 'string', true, false or null")

    def _literal(self) -> Any:
        operand = self._operand()
        if isinstance(operand, Column):
            raise ExpressionError(
                f"filter expression: 'in (...)' takes literal values, not the column "
                f"'{operand.name}' (quote strings: 'value')"
            )
        return operand.value

    def _predicate(self) -> Node:
        left = self._operand()
        tok = self.tok
        if tok.kind == "op":
            self._advance()
            return Compare(left, tok.value, self._operand())
        negated = False
        nxt = self.tokens[min(self.i + 1, len(self.tokens) - 1)]
        if self._is_kw("not") and nxt.kind == "kw" and nxt.value in ("between", "in"):
            self._advance()
            negated = True
        if self._is_kw("between"):
            self._advance()
            low = self._operand()
            self._expect_kw("and")
            return Between(left, low, self._operand(), negated)
        if self._is_kw("in"):
            self._advance()
            if self.tok.kind != "(":
                raise self._error("'(' after 'in'")
            self._advance()
            values = [self._literal()]
            while self.tok.kind == ",":
                self._advance()
                values.append(self._literal())
                if len(values) > MAX_IN_VALUES:
                    raise ExpressionError(f"'in (...)' takes at most {MAX_IN_VALUES} values")
            if self.tok.kind != ")":
                raise self._error("',' or ')'")
            self._advance()
            return InList(left, tuple(values), negated)
        if self._is_kw("is"):
            self._advance()
            is_not = False
            if self._is_kw("not"):
                self._advance()
                is_not = True
            self._expect_kw("null")
            return IsNull(left, is_not)
        if isinstance(left, Column):
            return Truth(left)
        raise self._error("a comparison (<, <=, >, >=, ==, !=), between, in or is null")


def parse(text: str) -> Node:
    """Parse ``text`` into an expression tree (no table needed); raise :class:`ExpressionError`."""
    if not text or not text.strip():
        raise ExpressionError("filter expression is empty: pass e.g. --where 'flow_mean >= 0.5'")
    return _Parser(text).parse()


# ---------------------------------------------------------------------------- rendering


def _fmt_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def ident_text(name: str) -> str:
    """A column name as expression text: bare when it is an identifier, else in backticks."""
    ok = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.lower() not in KEYWORDS
    return name if ok else f"`{name}`"


def _fmt_operand(operand: Operand) -> str:
    if isinstance(operand, Column):
        return ident_text(operand.name)
    return _fmt_value(operand.value)


def to_text(node: Node, parent: type | None = None) -> str:
    """Canonical text of ``node`` (re-parses to the same tree)."""
    if isinstance(node, Compare):
        return f"{_fmt_operand(node.left)} {node.op} {_fmt_operand(node.right)}"
    if isinstance(node, Between):
        neg = "not " if node.negated else ""
        return (
            f"{_fmt_operand(node.operand)} {neg}between {_fmt_operand(node.low)} "
            f"and {_fmt_operand(node.high)}"
        )
    if isinstance(node, InList):
        neg = "not " if node.negated else ""
        values = ", ".join(_fmt_value(v) for v in node.values)
        return f"{_fmt_operand(node.operand)} {neg}in ({values})"
    if isinstance(node, IsNull):
        return f"{_fmt_operand(node.operand)} is {'not ' if node.negated else ''}null"
    if isinstance(node, Truth):
        return _fmt_operand(node.column)
    if isinstance(node, Not):
        inner = to_text(node.child, Not)
        return f"not {inner}" if isinstance(node.child, Not | Truth) else f"not ({inner})"
    word = " and " if isinstance(node, And) else " or "
    text = word.join(to_text(c, type(node)) for c in node.children)
    return f"({text})" if parent is not None and parent is not type(node) else text


def conjuncts(node: Node) -> list[Node]:
    """The top-level ``and`` terms of ``node`` (the funnel's steps), in order."""
    return list(node.children) if isinstance(node, And) else [node]


def columns_of(node: Node) -> list[str]:
    """Column names ``node`` refers to, in first-seen order."""
    seen: dict[str, None] = {}

    def visit(n: Any) -> None:
        if isinstance(n, Column):
            seen.setdefault(n.name, None)
        elif isinstance(n, Compare):
            visit(n.left)
            visit(n.right)
        elif isinstance(n, Between):
            visit(n.operand)
            visit(n.low)
            visit(n.high)
        elif isinstance(n, InList | IsNull):
            visit(n.operand)
        elif isinstance(n, Truth):
            visit(n.column)
        elif isinstance(n, Not):
            visit(n.child)
        elif isinstance(n, And | Or):
            for c in n.children:
                visit(c)

    visit(node)
    return list(seen)


def describe(node: Node) -> dict[str, Any]:
    """``{"condition", "column", "op", "value"}`` of one funnel step (for threshold lines).

    ``column`` is the single column compared with literals (null when the step mixes columns or
    is a compound); ``value`` is the literal, ``[low, high]`` for between, the list for in.
    """
    text = to_text(node)
    out: dict[str, Any] = {"condition": text, "column": None, "op": None, "value": None}
    if isinstance(node, Compare):
        left, right, op = node.left, node.right, node.op
        if isinstance(left, Literal) and isinstance(right, Column):
            left, right, op = right, left, _FLIP[op]
        if isinstance(left, Column) and isinstance(right, Literal):
            out.update(column=left.name, op=op, value=right.value)
        else:
            out.update(op=op)
    elif isinstance(node, Between):
        bounds = (node.low, node.high)
        if isinstance(node.operand, Column) and all(isinstance(b, Literal) for b in bounds):
            out.update(
                column=node.operand.name,
                op="not between" if node.negated else "between",
                value=[node.low.value, node.high.value],  # type: ignore[union-attr]
            )
    elif isinstance(node, InList) and isinstance(node.operand, Column):
        out.update(
            column=node.operand.name,
            op="not in" if node.negated else "in",
            value=list(node.values),
        )
    elif isinstance(node, IsNull) and isinstance(node.operand, Column):
        out.update(column=node.operand.name, op="is not null" if node.negated else "is null")
    elif isinstance(node, Truth):
        out.update(column=node.column.name, op="==", value=True)
    elif isinstance(node, Not) and isinstance(node.child, Truth):
        out.update(column=node.child.column.name, op="==", value=False)
    return out


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


# ---------------------------------------------------------------------------- evaluation


def unknown_column_message(name: str, available: Sequence[str]) -> str:
    """One line: the unknown column and the closest existing names."""
    close = difflib.get_close_matches(name, list(available), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "no similar column"
    return f"unknown column '{name}' in filter expression ({hint})"


def _kind(dtype: pa.DataType) -> str:
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_null(dtype):
        return "null"
    return str(dtype)


def _literal_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string"


class Evaluator:
    """Evaluate expression trees against one Arrow table (columns checked against its schema).

    ``missing`` builds the message for a column the table lacks (so callers can say which
    scorer produces it); the default names the closest existing columns.
    """

    def __init__(
        self, table: pa.Table, missing: Callable[[str, Sequence[str]], str] | None = None
    ) -> None:
        self.table = table
        self.missing = missing or unknown_column_message

    def check(self, node: Node) -> None:
        """Raise :class:`ExpressionError` for unknown columns or mismatched types, before work."""
        names = self.table.column_names
        for name in columns_of(node):
            if name not in names:
                raise ExpressionError(self.missing(name, names))
        self.mask(node, _dry=True)

    # -- operands
    def _operand(self, operand: Operand) -> tuple[Any, str]:
        if isinstance(operand, Column):
            if operand.name not in self.table.column_names:
                raise ExpressionError(self.missing(operand.name, self.table.column_names))
            column = self.table.column(operand.name)
            return column, _kind(column.type)
        return operand.value, _literal_kind(operand.value)

    @staticmethod
    def _same_kind(kinds: Sequence[str], node: Node) -> None:
        real = {k for k in kinds if k != "null"}
        bad = [k for k in real if k not in ("number", "string", "bool")]
        if bad:
            raise ExpressionError(
                f"'{to_text(node)}': a column of type {bad[0]} cannot be compared "
                "(only numbers, strings and booleans)"
            )
        if len(real) > 1:
            raise ExpressionError(
                f"'{to_text(node)}' compares {' with '.join(sorted(real))}: "
                "quote strings, leave numbers bare"
            )

    def _full(self, value: Any) -> pa.ChunkedArray:
        """A literal spread to the table's length (for literal-only comparisons)."""
        return pa.chunked_array([pa.array([value] * self.table.num_rows)])

    # -- predicates (three-valued: true / false / null)
    def mask(self, node: Node, _dry: bool = False) -> Any:
        """Three-valued boolean result of ``node`` per row (nulls where unknown)."""
        if isinstance(node, Compare):
            (a, ka), (b, kb) = self._operand(node.left), self._operand(node.right)
            self._same_kind((ka, kb), node)
            if ka == "null" or kb == "null":
                raise ExpressionError(
                    f"'{to_text(node)}' compares with null: write 'is null' or 'is not null'"
                )
            if _dry:
                return None
            if not isinstance(a, pa.ChunkedArray) and not isinstance(b, pa.ChunkedArray):
                a = self._full(a)
            fn = {
                "<": pc.less,
                "<=": pc.less_equal,
                ">": pc.greater,
                ">=": pc.greater_equal,
                "==": pc.equal,
                "!=": pc.not_equal,
            }[node.op]
            return fn(a, b)
        if isinstance(node, Between):
            parts = [self._operand(o) for o in (node.operand, node.low, node.high)]
            self._same_kind([k for _, k in parts], node)
            if any(k == "null" for _, k in parts):
                raise ExpressionError(f"'{to_text(node)}': between needs two non-null bounds")
            if _dry:
                return None
            x, lo, hi = (p[0] for p in parts)
            if not isinstance(x, pa.ChunkedArray):
                x = self._full(x)
            inside = pc.and_kleene(pc.greater_equal(x, lo), pc.less_equal(x, hi))
            return pc.invert(inside) if node.negated else inside
        if isinstance(node, InList):
            x, kx = self._operand(node.operand)
            kinds = [kx, *(_literal_kind(v) for v in node.values)]
            self._same_kind(kinds, node)
            if _dry:
                return None
            if not isinstance(x, pa.ChunkedArray):
                x = self._full(x)
            values = [v for v in node.values if v is not None]
            value_set = pa.array(values, type=x.type) if values else pa.array([], type=x.type)
            hit = pc.is_in(x, value_set=value_set)
            # is_in says false for a null input; make it unknown (three-valued) instead.
            hit = pc.if_else(pc.is_null(x), pa.scalar(None, pa.bool_()), hit)
            return pc.invert(hit) if node.negated else hit
        if isinstance(node, IsNull):
            x, _ = self._operand(node.operand)
            if _dry:
                return None
            if not isinstance(x, pa.ChunkedArray):
                x = self._full(x)
            nulls = pc.is_null(x, nan_is_null=True)
            return pc.invert(nulls) if node.negated else nulls
        if isinstance(node, Truth):
            x, kind = self._operand(node.column)
            if kind != "bool":
                raise ExpressionError(
                    f"column '{node.column.name}' is {kind}, not boolean: compare it, e.g. "
                    f"'{node.column.name} > 0'"
                )
            return None if _dry else x
        if isinstance(node, Not):
            inner = self.mask(node.child, _dry)
            return None if _dry else pc.invert(inner)
        if isinstance(node, And | Or):
            results = [self.mask(c, _dry) for c in node.children]
            if _dry:
                return None
            fn = pc.and_kleene if isinstance(node, And) else pc.or_kleene
            out = results[0]
            for r in results[1:]:
                out = fn(out, r)
            return out
        raise ExpressionError(f"unsupported expression node {type(node).__name__}")

    def passes(self, node: Node, keep_unscored: bool = False) -> pa.ChunkedArray:
        """Definite per-row pass/fail: unknown (null) fails unless ``keep_unscored``."""
        result = self.mask(node)
        return pc.fill_null(result, keep_unscored)


def compile_expression(
    text: str, table: pa.Table, missing: Callable[[str, Sequence[str]], str] | None = None
) -> Node:
    """Parse ``text`` and check it against ``table``'s columns and types."""
    node = parse(text)
    Evaluator(table, missing).check(node)
    return node
