"""The ``$filter`` subset the Graph emulator understands, with Graph's advanced-query rules.

Comparisons ``prop eq|ne literal`` and ``prop in (literal, ...)``, the functions
``startsWith(prop, 'x')`` and ``endsWith(prop, 'x')``, ``not``, ``and``/``or`` and parentheses;
string literals in single quotes with ``''`` standing for one quote.

Directory objects (users, deleted users) keep some of that for *advanced queries*: the request
must send ``ConsistencyLevel: eventual`` and ``$count=true``, or Graph answers 400
``Request_UnsupportedQuery``. That holds for ``ne``, ``not`` and ``endsWith`` everywhere, and
for even ``eq``/``in``/``startsWith`` on the properties Microsoft's per-property table marks
advanced (``employeeType``, ``companyName``, ``officeLocation``, ...):
https://learn.microsoft.com/graph/aad-advanced-queries
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jitadmin.emulators.graph.http import GraphError, bad_request, unsupported_query

Literal = str | bool | None
_UNSUPPORTED_OPERATORS = frozenset({"gt", "ge", "lt", "le", "has"})
_FUNCTIONS = frozenset({"startswith", "endswith"})


@dataclass(frozen=True)
class FilterRules:
    """What one collection lets ``$filter`` do, by default and with advanced queries."""

    type_name: str  # as Graph names it in errors: "User", "Domain", ...
    props: Mapping[str, type]
    advanced_eq: frozenset[str] = frozenset()  # even eq/in/startsWith need advanced queries
    starts_with: frozenset[str] = frozenset()  # startsWith works by default
    ends_with: frozenset[str] = frozenset()  # endsWith, advanced queries only
    directory_object: bool = False  # advanced queries exist for this collection at all
    # Filled in per request: whether it sent ConsistencyLevel: eventual and $count=true.
    advanced: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class Comparison:
    prop: str
    op: str  # "eq" | "ne" | "in" | "startswith" | "endswith"
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class Logical:
    op: str  # "and" | "or"
    left: Node
    right: Node


Node = Comparison | Not | Logical


def _invalid(text: str) -> GraphError:
    return bad_request(f"Invalid filter clause: {text}", code="BadRequest")


def _needs_advanced(operator: str) -> GraphError:
    # Graph's wording for an advanced-only operator sent without the advanced parameters.
    return unsupported_query(
        f"Operator '{operator}' is not supported because the required parameters might be "
        "missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. "
        "Refer to https://aka.ms/graph-docs/advanced-queries for more information"
    )


def _tokens(text: str) -> list[tuple[str, str]]:
    """Split into (kind, value): kinds are str, word, (, ) and ,."""
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
    def __init__(self, text: str, rules: FilterRules) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.rules = rules

    def peek(self, ahead: int = 0) -> tuple[str, str] | None:
        at = self.pos + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _invalid("unexpected end of expression.")
        self.pos += 1
        return token

    def expect(self, kind: str) -> None:
        if self.take()[0] != kind:
            raise _invalid(f"'{kind}' expected.")

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
        node = self.parse_unary()
        while self.keyword("and"):
            node = Logical("and", node, self.parse_unary())
        return node

    def parse_unary(self) -> Node:
        if self.keyword("not"):
            self._advanced_operator("not")
            return Not(self.parse_unary())
        return self.parse_primary()

    def parse_primary(self) -> Node:
        kind, value = self.take()
        if kind == "(":
            node = self.parse_or()
            self.expect(")")
            return node
        if kind != "word":
            raise _invalid(f"syntax error at '{value}'.")
        if (self.peek() or ("", ""))[0] == "(":
            return self._function(value)
        prop = self._property(value)
        op_kind, op = self.take()
        operator = op.lower()
        if op_kind != "word":
            raise _invalid(f"syntax error at '{op}'.")
        if operator in _UNSUPPORTED_OPERATORS:
            raise unsupported_query()
        if operator == "ne":
            self._advanced_operator("ne")
        elif operator not in ("eq", "in"):
            raise _invalid(f"syntax error at '{op}'.")
        self._check_default_or_advanced(prop)
        if operator == "in":
            return Comparison(prop, "in", self._literal_list(prop))
        return Comparison(prop, operator, (self._literal(prop),))

    def _function(self, name: str) -> Node:
        function = name.lower()
        if function not in _FUNCTIONS:
            raise unsupported_query()
        self.expect("(")
        kind, raw = self.take()
        if kind != "word":
            raise _invalid(f"syntax error at '{raw}'.")
        prop = self._property(raw)
        self.expect(",")
        kind, literal = self.take()
        if kind != "str":
            raise _invalid(f"syntax error at '{literal}'.")
        self.expect(")")
        rules = self.rules
        if function == "endswith":
            self._advanced_operator("endsWith")
            if prop not in rules.ends_with:
                raise self._unsupported_property(prop)
        elif prop not in rules.starts_with and not (prop in rules.advanced_eq and rules.advanced):
            raise self._unsupported_property(prop)
        return Comparison(prop, function, (literal,))

    def _property(self, name: str) -> str:
        if "/" in name or name not in self.rules.props:
            raise self._unsupported_property(name)
        return name

    def _unsupported_property(self, prop: str) -> GraphError:
        return unsupported_query(
            f"Unsupported or invalid query filter clause specified for property "
            f"'{prop}' of resource '{self.rules.type_name}'."
        )

    def _check_default_or_advanced(self, prop: str) -> None:
        if prop in self.rules.advanced_eq and not self.rules.advanced:
            raise self._unsupported_property(prop)

    def _advanced_operator(self, operator: str) -> None:
        if not self.rules.directory_object:
            raise unsupported_query()
        if not self.rules.advanced:
            raise _needs_advanced(operator)

    def _literal_list(self, prop: str) -> tuple[Literal, ...]:
        self.expect("(")
        values = [self._literal(prop)]
        while (self.peek() or ("", ""))[0] == ",":
            self.take()
            values.append(self._literal(prop))
        self.expect(")")
        return tuple(values)

    def _literal(self, prop: str) -> Literal:
        kind, raw = self.take()
        expected = self.rules.props[prop]
        if kind == "str":
            literal: Literal = raw
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


def parse_filter(text: str, rules: FilterRules) -> Node:
    if not text.strip():
        raise _invalid("empty expression.")
    return _Parser(text, rules).parse()


def _equal(actual: object, wanted: Literal) -> bool:
    if isinstance(wanted, str) and isinstance(actual, str):
        # Directory string comparisons (UPN, mail, ids) are case-insensitive.
        return actual.casefold() == wanted.casefold()
    return bool(actual == wanted)


def matches(node: Node, row: Mapping[str, Any]) -> bool:
    if isinstance(node, Logical):
        if node.op == "and":
            return matches(node.left, row) and matches(node.right, row)
        return matches(node.left, row) or matches(node.right, row)
    if isinstance(node, Not):
        return not matches(node.node, row)
    return _compare(node, row.get(node.prop))


def _compare(node: Comparison, actual: object) -> bool:
    if node.op in ("eq", "in"):
        return any(_equal(actual, value) for value in node.values)
    if node.op == "ne":
        return not _equal(actual, node.values[0])
    text = actual.casefold() if isinstance(actual, str) else None
    affix = str(node.values[0]).casefold()
    if node.op == "startswith":
        return text is not None and text.startswith(affix)
    return text is not None and text.endswith(affix)
