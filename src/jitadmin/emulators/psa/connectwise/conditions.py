"""ConnectWise query helpers for the emulator: ``conditions``, ``fields``, ``orderBy``, paging.

Grammar, as ConnectWise clients use it: ``field op value`` terms joined with ``and``/``or``,
``not`` and parentheses. Operators ``= != < <= > >= contains like in`` (``not`` may precede the
last three). Values: ``"strings"`` (backslash escapes), numbers, bare ``true``/``false``/``null``,
``[dates]`` and ``(lists)``. Paths use ``/`` for nesting (``company/id``). String comparisons
ignore case, as SQL Server's default collation does on the real server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Value = str | int | float | bool | datetime | None | list[Any]


MAX_PAGE_SIZE = 1000  # "a hard limit of 1,000 records"
DEFAULT_PAGE_SIZE = 25  # believed to be the default; not documented


class QueryError(ValueError):
    """A malformed or unsupported query parameter; the emulator answers 400."""


@dataclass(frozen=True)
class Compare:
    path: str
    op: str
    value: Value
    negate: bool = False


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Compare | BoolOp | Not

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<date>\[[^\]]*\])
      | (?P<num>-?\d+(?:\.\d+)?(?![\w/]))
      | (?P<op>!=|<=|>=|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][\w/]*)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"contains", "like", "in"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            raise QueryError(f"cannot parse conditions near {text[pos : pos + 20]!r}")
        tokens.append(_Tok(match.lastgroup, match.group(match.lastgroup)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise QueryError("conditions end too early")
        self.pos += 1
        return tok

    def keyword(self, *words: str) -> str | None:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.lower() in words:
            self.pos += 1
            return tok.text.lower()
        return None

    def expr(self) -> Node:
        return self.bool_op("or", self.and_expr)

    def and_expr(self) -> Node:
        return self.bool_op("and", self.unary)

    def bool_op(self, word: str, operand: Any) -> Node:
        parts: list[Node] = [operand()]
        while self.keyword(word):
            parts.append(operand())
        return parts[0] if len(parts) == 1 else BoolOp(word, tuple(parts))

    def unary(self) -> Node:
        if self.keyword("not"):
            return Not(self.unary())
        tok = self.peek()
        if tok is not None and tok.text == "(":
            self.pos += 1
            node = self.expr()
            self.expect(")")
            return node
        return self.compare()

    def expect(self, text: str) -> None:
        if self.next().text != text:
            raise QueryError(f"expected {text!r} in conditions")

    def compare(self) -> Compare:
        field = self.next()
        if field.kind != "word":
            raise QueryError(f"expected a field name, got {field.text!r}")
        negate = self.keyword("not") is not None
        op_tok = self.next()
        op = op_tok.text.lower()
        if op_tok.kind == "op" and not negate:
            return Compare(field.text, op, self.scalar())
        if op_tok.kind == "word" and op in _WORD_OPS:
            value: Value = self.list_value() if op == "in" else self.scalar()
            return Compare(field.text, op, value, negate)
        raise QueryError(f"unknown operator {op_tok.text!r}")

    def list_value(self) -> list[Any]:
        self.expect("(")
        items: list[Any] = [self.scalar()]
        while (tok := self.next()).text == ",":
            items.append(self.scalar())
        if tok.text != ")":
            raise QueryError("expected ')' after list")
        return items

    def scalar(self) -> Value:
        tok = self.next()
        if tok.kind == "str":
            return re.sub(r"\\(.)", r"\1", tok.text[1:-1])
        if tok.kind == "num":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind == "date":
            return _parse_date(tok.text[1:-1])
        word = tok.text.lower()
        if tok.kind == "word" and word in {"true", "false"}:
            return word == "true"
        if tok.kind == "word" and word == "null":
            return None
        raise QueryError(f"expected a value, got {tok.text!r}")


def _parse_date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"invalid date [{text}]") from None


def parse_conditions(text: str, known_paths: Iterable[str]) -> Node | None:
    """Parse ``text``; ``None`` for an empty string. Unknown fields raise ``QueryError``."""
    tokens = _tokenize(text)
    if not tokens:
        return None
    parser = _Parser(tokens)
    node = parser.expr()
    if parser.peek() is not None:
        raise QueryError(f"unexpected {parser.peek().text!r} in conditions")  # type: ignore[union-attr]
    known = {p.lower() for p in known_paths}
    for path in _paths(node):
        if path.lower() not in known:
            raise QueryError(f"Unknown field '{path}'")
    return node


def _paths(node: Node) -> Iterable[str]:
    if isinstance(node, Compare):
        yield node.path
    elif isinstance(node, Not):
        yield from _paths(node.part)
    else:
        for part in node.parts:
            yield from _paths(part)


def resolve(record: Mapping[str, Any], path: str) -> Any:
    """The value at ``a/b/c`` (field names match case-insensitively), or None."""
    current: Any = record
    for name in path.split("/"):
        if not isinstance(current, Mapping):
            return None
        lowered = {k.lower(): v for k, v in current.items()}
        current = lowered.get(name.lower())
    return current


def matches(node: Node | None, record: Mapping[str, Any]) -> bool:
    if node is None:
        return True
    if isinstance(node, Not):
        return not matches(node.part, record)
    if isinstance(node, BoolOp):
        results = (matches(part, record) for part in node.parts)
        return all(results) if node.op == "and" else any(results)
    result = _compare(resolve(record, node.path), node.op, node.value)
    return not result if node.negate else result


def _norm(value: Any, like: Any) -> Any:
    """Bring a record value into the literal's domain (case, dates) before comparing."""
    if isinstance(value, str) and isinstance(like, datetime):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value.lower() if isinstance(value, str) else value


def _compare(actual: Any, op: str, literal: Value) -> bool:
    if op == "in":
        return isinstance(literal, list) and any(_equal(actual, item) for item in literal)
    if op in {"=", "!="}:
        return _equal(actual, literal) is (op == "=")
    left, right = _norm(actual, literal), _norm(literal, literal)
    if op in {"contains", "like"}:
        return _text_match(op, left, right)
    return _ordered(op, left, right)


def _equal(actual: Any, literal: Value) -> bool:
    left, right = _norm(actual, literal), _norm(literal, literal)
    if _numeq(left, right):
        return True
    # Strictly typed otherwise: true must not equal 1, "250" must not equal 250.
    return type(left) is type(right) and bool(left == right)


def _text_match(op: str, left: Any, right: Any) -> bool:
    if not isinstance(left, str) or not isinstance(right, str):
        return False
    if op == "contains":
        return right in left
    pattern = ".*".join(re.escape(part) for part in right.split("*"))
    return re.fullmatch(pattern, left, re.DOTALL) is not None


def _ordered(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None or isinstance(left, bool) != isinstance(right, bool):
        return False
    try:
        result = {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}
    except TypeError:
        return False
    return bool(result[op])


def _numeq(left: Any, right: Any) -> bool:
    numeric = (int, float)
    return (
        isinstance(left, numeric)
        and isinstance(right, numeric)
        and not isinstance(left, bool)
        and not isinstance(right, bool)
        and left == right
    )


def flatten_paths(record: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Every scalar path of a template record: the fields a query may name."""
    paths: set[str] = set()
    for key, value in record.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            paths |= flatten_paths(value, f"{path}/")
        else:
            paths.add(path)
    return paths


def project(record: Mapping[str, Any], fields: str | None) -> dict[str, Any]:
    """Apply a ``fields=id,status/name,company`` projection (unknown names are skipped)."""
    if not fields:
        return dict(record)
    out: dict[str, Any] = {}
    for raw in fields.split(","):
        names = [n for n in raw.strip().split("/") if n]
        source: Any = record
        target = out
        for depth, name in enumerate(names):
            if not isinstance(source, Mapping) or name not in source:
                break
            source = source[name]
            if depth == len(names) - 1:
                target[name] = source
            else:
                target = target.setdefault(name, {})
    return out


def sort_records(
    records: Sequence[Mapping[str, Any]], order_by: str | None, known_paths: Iterable[str]
) -> list[Mapping[str, Any]]:
    """Apply ``orderBy=field [asc|desc]``; the default order is by id ascending."""
    spec = (order_by or "id asc").split()
    if not spec or len(spec) > 2 or (len(spec) == 2 and spec[1].lower() not in {"asc", "desc"}):
        raise QueryError(f"invalid orderBy {order_by!r}")
    path = spec[0]
    if path.lower() not in {p.lower() for p in known_paths}:
        raise QueryError(f"Unknown field '{path}' in orderBy")
    descending = len(spec) == 2 and spec[1].lower() == "desc"

    def key(record: Mapping[str, Any]) -> tuple[bool, Any]:
        value = _norm(resolve(record, path), None)
        return (value is None, value if value is not None else 0)

    return sorted(records, key=key, reverse=descending)


def select(
    records: Sequence[Mapping[str, Any]],
    paths: Iterable[str],
    conditions: str | None,
    order_by: str | None,
) -> list[Mapping[str, Any]]:
    """Filter by ``conditions`` and sort by ``orderBy``, as one list endpoint does."""
    known = set(paths)
    node = parse_conditions(conditions or "", known)
    return sort_records([r for r in records if matches(node, r)], order_by, known)


@dataclass(frozen=True)
class Page:
    items: list[Mapping[str, Any]]
    link: str | None  # the navigable-mode Link header value


def paginate(
    records: Sequence[Mapping[str, Any]],
    page_raw: str | None,
    size_raw: str | None,
    url_for: Callable[[int, int], str],
) -> Page:
    """One 1-based page plus Link rels first/prev/next/last, built with ``url_for(page, size)``."""
    page = _positive_int("page", page_raw, 1)
    size = _positive_int("pageSize", size_raw, DEFAULT_PAGE_SIZE)
    if size > MAX_PAGE_SIZE:
        raise QueryError(f"pageSize cannot exceed {MAX_PAGE_SIZE}")
    last = max(1, math.ceil(len(records) / size))
    rels: list[tuple[int, str]] = []
    if page > 1:
        rels += [(1, "first"), (min(page - 1, last), "prev")]
    if page < last:
        rels += [(page + 1, "next"), (last, "last")]
    link = ", ".join(f'<{url_for(target, size)}>; rel="{rel}"' for target, rel in rels)
    return Page(list(records[(page - 1) * size : page * size]), link or None)


def _positive_int(name: str, raw: str | None, default: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"{name} must be an integer") from None
    if value < 1:
        raise QueryError(f"{name} must be positive")
    return value
