"""The agent's fail-safe: it knows the end of every grant the server says may hold access in
its domain; when it cannot reach the server past an end plus the grace period, it revokes
that grant itself (out of Domain Admins, disabled, password reset), and reports it when the
server is back. The DC's own accountExpires stays the third net behind both."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jitadmin.agent.config import write_private

log = logging.getLogger("jitadmin.agent")


@dataclass(frozen=True)
class KnownGrant:
    grant_id: str
    requester: str
    username: str
    expires_at: datetime
    object_guid: str | None = None


class FailsafeState:
    """The grants to watch and when the server last answered, kept on disk across restarts."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "failsafe.json"
        self.grants: dict[str, KnownGrant] = {}
        self.revoked: set[str] = set()  # revoked here, not yet reported
        self.last_contact: datetime | None = None
        if self.path.exists():
            self._load(json.loads(self.path.read_text()))

    def _load(self, raw: dict[str, Any]) -> None:
        for item in raw.get("grants", []):
            known = KnownGrant(
                item["grant_id"], item["requester"], item["username"],
                datetime.fromisoformat(item["expires_at"]), item.get("object_guid"),
            )  # fmt: skip
            self.grants[known.grant_id] = known
        self.revoked = set(raw.get("revoked", []))
        contact = raw.get("last_contact")
        self.last_contact = datetime.fromisoformat(contact) if contact else None

    def save(self) -> None:
        grants = [
            {"grant_id": g.grant_id, "requester": g.requester, "username": g.username,
             "expires_at": g.expires_at.isoformat(), "object_guid": g.object_guid}
            for g in self.grants.values()
        ]  # fmt: skip
        write_private(
            self.path,
            json.dumps({"grants": grants, "revoked": sorted(self.revoked),
                        "last_contact": self.last_contact.isoformat() if self.last_contact
                        else None}),
        )  # fmt: skip

    def update(self, listed: list[dict[str, Any]], now: datetime) -> None:
        """The server answered: its list of grants that may hold access replaces ours."""
        self.grants = {
            item["grant_id"]: KnownGrant(
                str(item["grant_id"]), str(item["requester"]), str(item["username"]),
                datetime.fromisoformat(str(item["expires_at"])), item.get("object_guid"),
            )
            for item in listed
            if item.get("username")
        }  # fmt: skip
        self.last_contact = now
        self.save()

    def overdue(self, now: datetime, grace_s: float) -> list[KnownGrant]:
        """Grants past their end plus the grace whom the server has not been able to revoke
        (it was unreachable since before that moment), not yet revoked here."""
        due = []
        for grant in self.grants.values():
            if grant.grant_id in self.revoked:
                continue
            limit = grant.expires_at.astimezone(UTC) + timedelta(seconds=grace_s)
            if now >= limit and (self.last_contact is None or self.last_contact < limit):
                due.append(grant)
        return due

    def mark_revoked(self, grant_id: str) -> None:
        self.revoked.add(grant_id)
        self.save()

    def reported(self, grant_id: str) -> None:
        self.revoked.discard(grant_id)
        self.grants.pop(grant_id, None)
        self.save()
