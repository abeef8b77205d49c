"""The agent's side of a job: jitadmin's own LDAPS adapter against the local DC.

Jobs are the adapter's idempotent ensure-steps, so running one again (after a crash, or by a
second agent after a lapsed lease) converges to the same end; each step is reported through
``record`` as it completes, the result carries the adapter's read-back evidence."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from jitadmin.adapters.ad.provider import ActiveDirectoryIdentityProvider, AdConnection
from jitadmin.agent.config import DcSettings
from jitadmin.core.agent_protocol import JOB_EXTEND, JOB_GRANT, JOB_REVOKE
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    AlreadyExistsError,
    MisconfiguredError,
    RejectedError,
)
from jitadmin.ports import AccessSpec, ProgressRecorder, RevokeSpec

# The agent reaches only the DC its own administrator configured; the egress policy guards the
# server against URLs from outside, which the agent never takes.
_LOCAL = EgressPolicy.parse(["0.0.0.0/0", "::/0"])


def provider(dc: DcSettings, domain_prefix: str = "") -> ActiveDirectoryIdentityProvider:
    connection = AdConnection(
        url=dc.url, bind_user=dc.bind_user, bind_password=dc.bind_password, ca_pem=dc.ca_pem,
        domain_prefix=domain_prefix,
    )  # fmt: skip
    return ActiveDirectoryIdentityProvider(
        connection, connect_timeout_s=5.0, receive_timeout_s=10, egress=_LOCAL
    )


def error_kind(error: Exception) -> str:
    for cls, kind in (
        (AdapterNotFoundError, "not_found"), (AlreadyExistsError, "already_exists"),
        (RejectedError, "rejected"), (MisconfiguredError, "misconfigured"),
    ):  # fmt: skip
        if isinstance(error, cls):
            return kind
    return "transient"


def failure(error: Exception) -> dict[str, Any]:
    known = isinstance(error, AdapterError)
    message = str(error) if known else f"unexpected {type(error).__name__}"
    return {"ok": False, "error": {"kind": error_kind(error), "message": message[:500]}}


def run_job(
    dc: DcSettings, job: dict[str, Any], record: ProgressRecorder,
    make: Callable[[DcSettings, str], ActiveDirectoryIdentityProvider] = provider,
) -> dict[str, Any]:  # fmt: skip
    """Run one leased job; returns the result body (never raises for the DC's answers)."""
    payload: dict[str, Any] = job["payload"]
    try:
        ad = make(dc, str(payload.get("domain_prefix") or ""))
        wanted = payload.get("tenant_id")
        if wanted and job["kind"] in (JOB_GRANT, JOB_REVOKE):
            reached = ad.tenant_id()
            if reached.lower() != str(wanted).lower():
                raise MisconfiguredError(
                    f"this agent's DC is in domain {reached}, the grant in {wanted}; refused"
                )
        if job["kind"] == JOB_GRANT:
            spec = AccessSpec(
                job["grant_id"], payload["requester"], job.get("secret") or "",
                datetime.fromisoformat(payload["expires_at"]), dict(payload.get("account") or {}),
            )  # fmt: skip
            result = ad.grant(spec, record)
            return {"ok": True, "username": result.username, "account": result.account}
        if job["kind"] == JOB_REVOKE:
            ad.revoke(
                RevokeSpec(job["grant_id"], payload["requester"], payload.get("username"),
                           dict(payload.get("account") or {})),
                record,
            )  # fmt: skip
            return {"ok": True, "evidence": {"verified": "revoked"}}
        if job["kind"] == JOB_EXTEND:
            ad.extend(
                AccessSpec(job["grant_id"], payload["requester"], "",
                           datetime.fromisoformat(payload["expires_at"]),
                           dict(payload.get("account") or {}))
            )  # fmt: skip
            return {"ok": True, "evidence": {"account_expires_moved": payload["expires_at"]}}
        raise RejectedError(f"unknown job kind {job['kind']!r}")
    except Exception as error:  # noqa: BLE001 - every failure is reported, never lost
        return failure(error)
