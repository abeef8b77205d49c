"""The OData query subset the Graph emulator understands
(https://learn.microsoft.com/graph/query-parameters).

``$filter``: ``prop eq literal`` joined by ``and``/``or`` with parentheses; string literals in
single quotes with ``''`` standing for one quote. Anything else Graph would only accept as an
advanced query (``ne``, ``not``, functions, lambdas) answers 400 ``Request_UnsupportedQuery``.
Also ``$select`` projection, ``$top`` (1..999) and opaque ``$skiptoken`` paging.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from jitadmin.emulators.graph.http import GraphError, bad_request, unsupported_query

DEFAULT_PAGE = 100
MAX_PAGE = 999
_UNSUPPORTED_OPERATORS = frozenset({"ne", "gt", "ge", "lt", "le", "in", "has", "not"})


@dataclass(frozen=True)
class Comparison:
    prop: str
    value: str | bool | None


@dataclass(frozen=True)
class Logical:
    op: str  # "and" | "or"
    left: Node
    right: Node


Node = Comparison | Logical


def _invalid(text: str) -> GraphError:
    return bad_request(f"Invalid filter clause: {text}", code="BadRequest")


def _tokens(text: str) -> list[tuple[str, str]]:
    """Split into (kind, value): kinds are str, word, ( and )."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            out.append((ch, ch))
            i += 1
        elif ch == "'":
            chars: list[str] = []
            i += 1
            while True:
                if i >= len(text):
                    raise _invalid("unterminated string literal.")
                if text[i] == "'":
                    if i + 1 < len(text) and text[i + 1] == "'":
                        chars.append("'")  # OData escapes a quote by doubling it
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            out.append(("str", "".join(chars)))
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in "(),'":
                i += 1
            out.append(("word", text[start:i]))
    return out


class _Parser:
    def __init__(self, text: str, props: Mapping[str, type], type_name: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.props = props
        self.type_name = type_name

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _invalid("unexpected end of expression.")
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek() is not None:
            raise _invalid(f"syntax error at '{self.take()[1]}'.")
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.keyword("or"):
            node = Logical("or", node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_primary()
        while self.keyword("and"):
            node = Logical("and", node, self.parse_primary())
        return node

    def parse_primary(self) -> Node:
        kind, value = self.take()
        if kind == "(":
            node = self.parse_or()
            if self.take()[0] != ")":
                raise _invalid("')' expected.")
            return node
        if kind != "word":
            raise _invalid(f"syntax error at '{value}'.")
        if value.lower() == "not" or (self.peek() or ("", ""))[0] == "(":
            raise unsupported_query()  # functions and negation need advanced queries
        if "/" in value or value not in self.props:
            raise unsupported_query(
                f"Unsupported or invalid query filter clause specified for property "
                f"'{value}' of resource '{self.type_name}'."
            )
        op_kind, op = self.take()
        if op_kind != "word":
            raise _invalid(f"syntax error at '{op}'.")
        if op.lower() in _UNSUPPORTED_OPERATORS:
            raise unsupported_query()
        if op.lower() != "eq":
            raise _invalid(f"syntax error at '{op}'.")
        return Comparison(value, self._literal(value))

    def _literal(self, prop: str) -> str | bool | None:
        kind, raw = self.take()
        expected = self.props[prop]
        if kind == "str":
            literal: str | bool | None = raw
        elif kind == "word" and raw.lower() in ("true", "false"):
            literal = raw.lower() == "true"
        elif kind == "word" and raw.lower() == "null":
            return None
        else:
            raise _invalid(f"syntax error at '{raw}'.")
        if not isinstance(literal, expected):
            found = "Edm.Boolean" if isinstance(literal, bool) else "Edm.String"
            wanted = "Edm.Boolean" if expected is bool else "Edm.String"
            raise bad_request(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{wanted}' and '{found}' for operator kind 'Equal'.",
                code="BadRequest",
            )
        return literal


def parse_filter(text: str, props: Mapping[str, type], type_name: str) -> Node:
    if not text.strip():
        raise _invalid("empty expression.")
    return _Parser(text, props, type_name).parse()


def matches(node: Node, row: Mapping[str, Any]) -> bool:
    if isinstance(node, Logical):
        if node.op == "and":
            return matches(node.left, row) and matches(node.right, row)
        return matches(node.left, row) or matches(node.right, row)
    actual = row.get(node.prop)
    if isinstance(node.value, str) and isinstance(actual, str):
        # Directory string comparisons (UPN, mail, ids) are case-insensitive.
        return actual.casefold() == node.value.casefold()
    return bool(actual == node.value)


def system_options(params: Iterable[tuple[str, str]], allowed: Iterable[str]) -> dict[str, str]:
    """Pick the ``$options`` this route supports; any other ``$option`` is unsupported."""
    permitted = set(allowed)
    out: dict[str, str] = {}
    for key, value in params:
        if not key.startswith("$"):
            continue
        name = key.lower()
        if name not in permitted:
            raise unsupported_query(f"Query option '{key}' is not supported.")
        out[name] = value
    return out


def parse_select(text: str | None, known: Iterable[str], type_name: str) -> list[str] | None:
    if text is None or not text.strip():
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    known_set = set(known)
    for name in names:
        if name not in known_set and not name.startswith("extension_"):
            raise bad_request(
                "Parsing OData Select and Expand failed: Could not find a property named "
                f"'{name}' on type '{type_name}'.",
                code="BadRequest",
            )
    return names


def project(
    row: Mapping[str, Any], select: Sequence[str] | None, default: Sequence[str]
) -> dict[str, Any]:
    names = select if select is not None else default
    out: dict[str, Any] = {}
    for name in names:
        out[name] = row.get(name)
    return out


def parse_top(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE
    try:
        top = int(text)
    except ValueError:
        raise bad_request(
            f"Invalid value '{text}' for $top query option.", code="BadRequest"
        ) from None
    if not 1 <= top <= MAX_PAGE:
        raise unsupported_query(
            f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_PAGE} inclusive."
        )
    return top


def _encode_token(last_key: str) -> str:
    return base64.urlsafe_b64encode(f"X1:{last_key}".encode()).decode("ascii").rstrip("=")


def _decode_token(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith("X1:"):
        raise bad_request("The specified page token value is invalid.", code="Request_BadRequest")
    return raw[3:]


def paginate(
    rows: Sequence[Mapping[str, Any]],
    top: int,
    skiptoken: str | None,
    key: Callable[[Mapping[str, Any]], str] = lambda row: str(row["id"]),
) -> tuple[list[Mapping[str, Any]], str | None]:
    """Keyset paging by ``key``: a token names the last key served, so inserts never shift pages."""
    ordered = sorted(rows, key=key)
    if skiptoken is not None:
        after = _decode_token(skiptoken)
        ordered = [row for row in ordered if key(row) > after]
    page = ordered[:top]
    more = len(ordered) > top
    return list(page), (_encode_token(key(page[-1])) if more else None)


def next_link(root: str, path: str, params: Iterable[tuple[str, str]], token: str) -> str:
    """Absolute URL of the next page: same query, new ``$skiptoken``."""
    kept = [(k, v) for k, v in params if k.lower() != "$skiptoken"]
    kept.append(("$skiptoken", token))
    query = urlencode(kept, quote_via=quote, safe="$',()")
    return f"{root}{path}?{query}"


def context_url(root: str, entity_set: str, select: Sequence[str] | None, suffix: str = "") -> str:
    """``@odata.context`` value, e.g. ``{root}/v1.0/$metadata#users(id,mail)/$entity``."""
    projection = f"({','.join(select)})" if select else ""
    return f"{root}/v1.0/$metadata#{entity_set}{projection}{suffix}"
