"""The OData query options the Graph emulator understands besides ``$filter`` (``filters``):
``$select`` projection, ``$top`` (1..999), ``$count`` and opaque ``$skiptoken`` paging.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from jitadmin.emulators.graph.http import bad_request, unsupported_query

DEFAULT_PAGE = 100
MAX_PAGE = 999


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


def wants_count(text: str | None) -> bool:
    """``$count=true|false``; anything else is a 400, as in Graph."""
    if text is None:
        return False
    if text.lower() not in ("true", "false"):
        raise bad_request(f"Invalid value '{text}' for $count query option.", code="BadRequest")
    return text.lower() == "true"


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
