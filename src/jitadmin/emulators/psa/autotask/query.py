"""Autotask's JSON query grammar: filter trees, IncludeFields, paging tokens.

A query body is ``{"MaxRecords": n, "IncludeFields": [...], "filter": [...]}``; property names
match case-insensitively (clients send ``filter`` and ``Filter``). Filter items are
``{"op", "field", "value", "udf"}`` or groups ``{"op": "and"|"or", "items": [...]}``; the
top-level items are ANDed. Field names match case-insensitively, strings compare
case-insensitively (Autotask runs on SQL Server's default collation).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_PAGE = 500
MAX_OR_CONDITIONS = 500
_COMPARE = {"eq", "noteq", "gt", "gte", "lt", "lte"}
_TEXT = {"beginswith", "endswith", "contains"}
_PRESENCE = {"exist", "notexist"}
_LISTS = {"in", "notin"}
_GROUPS = {"and", "or"}


class QueryError(Exception):
    """A query the API refuses (rendered as 500 ``{"errors": [...]}``, as Autotask does)."""


@dataclass(frozen=True)
class Query:
    filter: list[Any]
    max_records: int
    include_fields: tuple[str, ...] | None

    def as_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"MaxRecords": self.max_records, "filter": self.filter}
        if self.include_fields is not None:
            body["IncludeFields"] = list(self.include_fields)
        return body


def _ci(mapping: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """``mapping[name]`` with the key matched case-insensitively."""
    for key, value in mapping.items():
        if key.lower() == name.lower():
            return value
    return default


def parse_query(body: Any) -> Query:
    if not isinstance(body, Mapping):
        raise QueryError("The query must be a JSON object.")
    raw_filter = _ci(body, "filter")
    if not isinstance(raw_filter, list) or not raw_filter:
        raise QueryError("A query must contain at least one filter item.")
    raw_max = _ci(body, "MaxRecords", MAX_PAGE)
    if isinstance(raw_max, bool) or not isinstance(raw_max, int) or not 1 <= raw_max <= MAX_PAGE:
        raise QueryError(f"MaxRecords must be between 1 and {MAX_PAGE}.")
    include = _ci(body, "IncludeFields")
    if include is not None and (
        not isinstance(include, list) or not all(isinstance(f, str) for f in include)
    ):
        raise QueryError("IncludeFields must be a list of field names.")
    if _count_or(raw_filter) > MAX_OR_CONDITIONS:
        raise QueryError(f"A query may hold at most {MAX_OR_CONDITIONS} OR conditions.")
    return Query(raw_filter, raw_max, tuple(include) if include else None)


def _count_or(items: Iterable[Any]) -> int:
    total = 0
    for item in items:
        if isinstance(item, Mapping) and str(_ci(item, "op", "")).lower() in _GROUPS:
            children = _ci(item, "items") or []
            if str(_ci(item, "op")).lower() == "or":
                total += len(children)
            total += _count_or(children)
    return total


def select(
    records: Sequence[Mapping[str, Any]], query: Query, fields: Iterable[str]
) -> list[Mapping[str, Any]]:
    """The matching records, by id ascending (Autotask's natural order)."""
    known = {f.lower(): f for f in fields}
    for name in query.include_fields or ():
        if name.lower() not in known:
            raise QueryError(f"Unknown field '{name}' in IncludeFields.")
    found = [r for r in records if all(_matches(item, r, known) for item in query.filter)]
    return sorted(found, key=lambda r: int(r["id"]))


def _matches(item: Any, record: Mapping[str, Any], known: Mapping[str, str]) -> bool:
    if not isinstance(item, Mapping):
        raise QueryError("Each filter item must be an object.")
    op = str(_ci(item, "op", "")).lower()
    if op in _GROUPS:
        children = _ci(item, "items")
        if not isinstance(children, list) or not children:
            raise QueryError(f"An '{op}' group needs a non-empty items list.")
        results = (_matches(child, record, known) for child in children)
        return all(results) if op == "and" else any(results)
    if _ci(item, "udf") is True:
        raise QueryError("User-defined fields are not supported by this emulator.")
    field = _ci(item, "field")
    if not isinstance(field, str) or field.lower() not in known:
        raise QueryError(f"Unknown field '{field}'.")
    actual = record.get(known[field.lower()])
    if op in _PRESENCE:
        present = actual is not None and actual != ""
        return present if op == "exist" else not present
    value = _ci(item, "value")
    if op in _LISTS:
        if not isinstance(value, list):
            raise QueryError(f"The '{op}' operator needs an array value.")
        hit = any(_compare(actual, "eq", v) for v in value)
        return hit if op == "in" else not hit
    if op in _COMPARE or op in _TEXT:
        if value is None:
            raise QueryError(f"A null value is not allowed for field '{field}'.")
        return _compare(actual, op, value)
    raise QueryError(f"Unknown operator '{_ci(item, 'op')}'.")


def _norm(actual: Any, literal: Any) -> tuple[Any, Any]:
    """Bring both sides into one domain: numbers, dates, case-folded text."""
    if isinstance(actual, bool) or isinstance(literal, bool):
        return actual, literal
    if isinstance(actual, int | float) and isinstance(literal, str):
        try:
            return actual, float(literal)
        except ValueError:
            return str(actual), literal.lower()
    if isinstance(actual, str) and isinstance(literal, str):
        when = _as_date(actual), _as_date(literal)
        if when[0] is not None and when[1] is not None:
            return when
        return actual.lower(), literal.lower()
    return actual, literal


def _as_date(text: str) -> datetime | None:
    if len(text) < 10 or text[4:5] != "-":
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _compare(actual: Any, op: str, literal: Any) -> bool:
    if actual is None:
        return op == "noteq"
    left, right = _norm(actual, literal)
    if op in _TEXT:
        if not isinstance(left, str) or not isinstance(right, str):
            left, right = str(actual).lower(), str(literal).lower()
        return {
            "contains": right in left,
            "beginswith": left.startswith(right),
            "endswith": left.endswith(right),
        }[op]
    if isinstance(left, bool) != isinstance(right, bool):
        return op == "noteq"
    if op in {"eq", "noteq"}:
        return (left == right) is (op == "eq")
    try:
        return bool(
            {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]
        )
    except TypeError:
        return False


def project(record: Mapping[str, Any], include: tuple[str, ...] | None) -> dict[str, Any]:
    """IncludeFields: only the named fields (plus the always-present ``userDefinedFields``)."""
    if include is None:
        return dict(record)
    wanted = {name.lower() for name in include}
    out = {k: v for k, v in record.items() if k.lower() in wanted}
    if "userDefinedFields" in record:
        out["userDefinedFields"] = record["userDefinedFields"]
    return out


def encode_token(entity: str, query: Query, offset: int) -> str:
    payload = json.dumps({"e": entity, "q": query.as_body(), "o": offset}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[str, Query, int]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return str(payload["e"]), parse_query(payload["q"]), int(payload["o"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise QueryError("The paging token is not valid.") from None
