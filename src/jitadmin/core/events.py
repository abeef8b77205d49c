"""Audit events: the evidence trail. Stored hash-chained, in the same transaction as the change."""

from __future__ import annotations

import hashlib
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
