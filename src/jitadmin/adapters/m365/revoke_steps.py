"""The steps of an M365 revocation that read back and re-issue (``M365IdentityProvider`` uses
them): tampering reports, removing the stored assignment while replication lags, stripping
what is listed, and collecting the evidence that the account went away."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from jitadmin.adapters.m365.client import GraphClient
from jitadmin.adapters.m365.directory import Directory, tampered_fields
from jitadmin.core.errors import TransientError
from jitadmin.ports import TAMPERING_STEP, ProgressRecorder

log = logging.getLogger(__name__)


class RevokeSteps:
    _dir: Directory
    _graph: GraphClient
    _now: Callable[[], datetime]
    _new_assignment_wait: timedelta

    def _report_tampering(
        self,
        user_id: str,
        grant_id: str,
        upn: str | None,
        record: ProgressRecorder,
        user: dict[str, Any] | None = None,
    ) -> None:
        """Record (never refuse) an account whose tag, name or UPN someone changed."""
        deleted = False
        if user is None:
            user = self._dir.user(user_id)
        if user is None:
            user, deleted = self._dir.deleted_user(user_id), True
        if user is None:
            return  # not visible (yet, or any more): nothing to compare
        changed = tampered_fields(user, grant_id, upn, deleted=deleted)
        if changed:
            log.warning("grant %s: account %s was changed: %s", grant_id, user_id, changed)
            record(TAMPERING_STEP, {"tampered_fields": ",".join(changed)})

    def _young(self, account: Mapping[str, Any]) -> bool:
        """Whether the stored assignment may still be invisible to reads (just created)."""
        raw = account.get("assigned_at")
        try:
            assigned = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            assigned = None
        return assigned is not None and self._now() - assigned < self._new_assignment_wait

    def _remove_stored_role(
        self, user_id: str, stored_id: str | None, young: bool, label: str
    ) -> None:
        """Delete the assignment we made, by its stored id; any others go in the poll that
        follows. A new assignment can be invisible to GET by id and to DELETE for a while, so
        while it is young a 404 means "not yet", never "already gone"."""
        if not stored_id:
            return
        deleted = False

        def removed() -> bool:
            nonlocal deleted
            stored = self._dir.assignment(stored_id)
            if stored is None:
                return deleted or not young
            # Only ever delete an assignment that belongs to our principal.
            if stored.get("principalId") != user_id:
                return True
            deleted = self._dir.delete_assignment(stored_id) or deleted
            return deleted or not young

        if not self._graph.poll(removed):
            raise TransientError(
                f"the new Global Administrator assignment of {label} is not visible yet, so it "
                "could not be removed yet (pending replication)"
            )

    def _roles_cleared(self, user_id: str) -> bool:
        """Strip what is listed; if anything was, read the list back at once."""
        return self._strip_roles(user_id) or not self._dir.assignments_of(user_id)

    def _strip_roles(self, user_id: str) -> bool:
        """Delete whatever the list shows; True when the list was already empty."""
        listed = self._dir.assignments_of(user_id)
        for item in listed:
            if isinstance(item.get("id"), str):
                self._dir.delete_assignment(str(item["id"]))
        return not listed

    def _confirm_gone(
        self, user_id: str, remaining: list[str], proof: list[str], record: ProgressRecorder
    ) -> bool:
        """One read-back round; re-issues a step whose effect a lagging replica undid, and
        collects the positive evidence that the account went away."""
        remaining.clear()
        if not self._strip_roles(user_id):
            remaining.append("role assignment")
        if self._dir.user(user_id) is not None:
            remaining.append("user")
            if self._dir.delete_user(user_id):
                record("user_deleted", {"user_deleted": True})
        elif self._dir.deleted_user(user_id) is not None:
            if "deleted_seen" not in proof:
                # Noted before the purge: a crash right after it still leaves the evidence.
                proof.append("deleted_seen")
                record("deleted_seen", {"deleted_seen": True})
            if self._dir.purge_user(user_id):
                proof.append("user_purged")
                record("user_purged", {"user_purged": True})
            else:
                remaining.append("deleted item")  # 404 right after the delete: not yet
        if not remaining and not proof:
            remaining.append("evidence of deletion (seen in deletedItems or purged)")
        return not remaining
