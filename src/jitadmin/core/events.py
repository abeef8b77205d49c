"""Audit events: the evidence trail. Stored hash-chained, in the same transaction as the change.

Each entry's hash is an HMAC-SHA256 over the previous hash and the entry (``keyed_chain_hash``),
under a key derived from the secret key, so someone who can write the database cannot recompute
the chain after editing an entry. The head record (last seq, last hash) carries its own HMAC
(``head_mac``, another derived key), so deleting the newest entries and moving the head back is
seen too. Entries written before keying (plain SHA-256, ``chain_hash``) stay as they are: the
keyed head records where keying began (``keyed_from``), and the first keyed entry covers the
last plain hash, so the old part cannot be recomputed either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jitadmin.core.clock import iso

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    kind: str
    actor: str
    at: datetime
    grant_id: str | None = None
    customer: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # Which credential acted ("token:<id>", "session:<handle>"), never the secret itself;
    # None for the worker, the CLI and anonymous callers.
    credential: str | None = None


def canonical(event: AuditEvent, seq: int) -> bytes:
    """The exact bytes an entry's hash covers; stable across databases and restarts."""
    body = {
        "seq": seq,
        "kind": event.kind,
        "actor": event.actor,
        "at": iso(event.at),
        "grant_id": event.grant_id,
        "customer": event.customer,
        "data": event.data,
    }
    if event.credential is not None:
        # Only when set, so entries written before the field existed still verify.
        body["credential"] = event.credential
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def chain_hash(previous_hash: str, event: AuditEvent, seq: int) -> str:
    return hashlib.sha256(previous_hash.encode() + canonical(event, seq)).hexdigest()


def keyed_chain_hash(key: bytes, previous_hash: str, event: AuditEvent, seq: int) -> str:
    message = previous_hash.encode() + canonical(event, seq)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def head_mac(key: bytes, seq: int, tip_hash: str, keyed_from: int) -> str:
    """The head record's own HMAC: which entry is last, its hash, and where keying began."""
    message = f"audit-head\x00{seq}\x00{tip_hash}\x00{keyed_from}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditHead:
    """The chain's tip as the head record holds it (authenticated before it is handed out)."""

    seq: int
    hash: str


@dataclass(frozen=True)
class AuditKeys:
    """The HMAC keys of the audit chain and of its head; the first of each is the current one."""

    chain: tuple[bytes, ...]
    head: tuple[bytes, ...]


def matches(expected: str, candidates: list[str]) -> bool:
    return any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates)
