"""Length and character limits of every text a caller gives us (docs/security.md).

Checked by the services before anything is looked up or written, so the API, the web forms
and the CLI share them, and no database (PostgreSQL refuses NUL and over-long values with an
error) ever sees a value that does not fit its column. Each refusal names the field and rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from jitadmin.core.errors import FieldProblem, ValidationFailedError
from jitadmin.core.passwords import MAX_LENGTH as MAX_PASSWORD_LENGTH
from jitadmin.core.policy import MAX_REASON_LENGTH


@dataclass(frozen=True)
class Limit:
    maximum: int
    # Multi-line text may hold line breaks and tabs; one-line values no control characters.
    multiline: bool = False


# Control characters (C0, DEL, C1, Unicode line/paragraph separators) and lone surrogates
# (which no database encoding can store). Multi-line text keeps \t, \n and \r.
_LINE_BAD = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_TEXT_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_SETTING_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

SETTING = Limit(2048)  # URLs, ids, names and secrets of a connection
LIMITS: dict[str, Limit] = {
    # Grants (columns: grants.ticket_id String(64), customer String(64), id String(36)).
    "customer": Limit(64),
    "identity_provider": Limit(16),
    "ticket_id": Limit(64),
    "grant_id": Limit(64),
    "reason": Limit(MAX_REASON_LENGTH, multiline=True),
    "password": Limit(MAX_PASSWORD_LENGTH),
    "state": Limit(32),
    # Customers (slug String(64), name String(200), psa_company_id and domain_prefix 64).
    "slug": Limit(64),
    "name": Limit(200),
    "psa_company_id": Limit(64),
    "domain_prefix": Limit(64),
    # Users and tokens (username String(200), role String(16)).
    "username": Limit(200),
    "actor": Limit(200),
    "role": Limit(16),
    "customers": Limit(64),  # each item
    # An approver's comment (stored with the grant's approvals and in the audit trail).
    "comment": Limit(1000, multiline=True),
    "approval_required": Limit(16),  # each item
    # Connection settings: PEM certificates and keys are the multi-line values.
    "ca_pem": Limit(16384, multiline=True),
    "certificate_pem": Limit(16384, multiline=True),
    "private_key_pem": Limit(16384, multiline=True),
}
REVEAL_REASON = Limit(500, multiline=True)
MAX_LIST_ITEMS = 1000


def problems(field: str, value: str, limit: Limit) -> list[FieldProblem]:
    """What is wrong with ``value`` as ``field`` under ``limit`` (nothing: an empty list)."""
    found: list[FieldProblem] = []
    if len(value) > limit.maximum:
        found.append(FieldProblem(field, f"must be at most {limit.maximum} characters"))
    if limit.multiline and _TEXT_BAD.search(value):
        found.append(
            FieldProblem(field, "must not contain control characters (other than line breaks)")
        )
    elif not limit.multiline and _LINE_BAD.search(value):
        found.append(
            FieldProblem(field, "must not contain control characters (NUL, line breaks...)")
        )
    return found


def check(values: Mapping[str, object], limits: Mapping[str, Limit] | None = None) -> None:
    """Refuse (422) when any text in ``values`` breaks its limit; ``None`` is not checked.

    Lists are checked item by item under the list's own limit (and hold at most 1 000 items).
    ``limits`` overrides the table for this call."""
    table = {**LIMITS, **(limits or {})}
    found: list[FieldProblem] = []
    for field, value in values.items():
        found.extend(_value_problems(field, value, table.get(field, SETTING)))
    if found:
        raise ValidationFailedError(found)


def check_settings(settings: Mapping[str, object]) -> None:
    """A connection's settings: names like ``base_url``, values text, numbers or true/false."""
    found: list[FieldProblem] = []
    for name, value in settings.items():
        if not _SETTING_NAME.match(name):
            found.append(FieldProblem("settings", "names must be 1-64 of a-z, 0-9 and _"))
        elif value is not None and not isinstance(value, str | int | float | bool):
            found.append(FieldProblem(name, "must be text, a number or true/false"))
        else:
            found.extend(_value_problems(name, value, LIMITS.get(name, SETTING)))
    if found:
        raise ValidationFailedError(found)


def _value_problems(field: str, value: object, limit: Limit) -> list[FieldProblem]:
    if isinstance(value, str):
        return problems(field, value, limit)
    if isinstance(value, list | tuple):
        if len(value) > MAX_LIST_ITEMS:
            return [FieldProblem(field, f"must hold at most {MAX_LIST_ITEMS} items")]
        return [p for item in value for p in _value_problems(field, item, limit)]
    return []


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_uuid(value: str) -> bool:
    """A canonical lowercase UUID (the ids jitadmin hands out), nothing looser."""
    return bool(_UUID.fullmatch(value))
