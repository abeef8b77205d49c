"""IdentityProvider for on-premises AD reached through the customer's on-prem agent.

The server never talks to the DC: each step of a grant (grant, revoke, extend) becomes a job
that one of the customer's agents leases over its outbound HTTPS connection and runs with the
same LDAPS adapter (``provider.py``) inside the customer's network. The agent reports each
progress step as it completes (recorded like the direct adapter's steps) and then its result
with the read-back evidence. Until the result is in, ``grant``/``revoke`` raise
``AgentPendingError``: the worker lets go of the grant without counting a failed attempt, and
the agent's result brings the next attempt forward, so no thread waits on an agent.
"""

from __future__ import annotations

from typing import Any

from jitadmin.core import naming
from jitadmin.core.agent_protocol import (
    DONE,
    FAILED,
    JOB_EXTEND,
    JOB_GRANT,
    JOB_REVOKE,
)
from jitadmin.core.clock import iso
from jitadmin.core.errors import (
    AdapterError,
    AdapterNotFoundError,
    AgentPendingError,
    AlreadyExistsError,
    MisconfiguredError,
    RejectedError,
    TransientError,
)
from jitadmin.ports import (
    AccessResult,
    AccessSpec,
    AgentJob,
    AgentJobQueue,
    ManagedAccount,
    ProgressRecorder,
    RevokeSpec,
)

_ERRORS: dict[str, type[AdapterError]] = {
    "transient": TransientError,
    "not_found": AdapterNotFoundError,
    "already_exists": AlreadyExistsError,
    "rejected": RejectedError,
    "misconfigured": MisconfiguredError,
}


class AgentIdentityProvider:
    kind = "ad_agent"

    def __init__(self, customer: str, jobs: AgentJobQueue, domain_prefix: str) -> None:
        self.customer = customer
        self._jobs = jobs
        self._prefix = domain_prefix

    def __repr__(self) -> str:
        return f"AgentIdentityProvider(customer={self.customer!r})"

    def planned_username(self, grant_id: str, requester: str) -> str:
        return naming.ad_sam_account_name(requester, self._prefix)

    def grant(self, spec: AccessSpec, record: ProgressRecorder) -> AccessResult:
        payload = {
            "requester": spec.requester, "expires_at": iso(spec.expires_at),
            "account": _plain(spec.account), "domain_prefix": self._prefix,
            "tenant_id": self._tenant_or_none(),
        }  # fmt: skip
        job = self._jobs.submit(self.customer, spec.grant_id, JOB_GRANT, payload, spec.password)
        result = self._outcome(job)
        account = result.get("account")
        username = result.get("username")
        if not isinstance(account, dict) or not isinstance(username, str) or not username:
            self._jobs.retire(job.id)
            raise TransientError(f"the agent's result of job {job.id} names no account")
        return AccessResult(username=username, account=dict(account))

    def revoke(self, spec: RevokeSpec, record: ProgressRecorder) -> None:
        # The customer's prefix too: a grant that never became active has no username yet,
        # and the agent must look for the name this customer's accounts really get.
        payload = {
            "requester": spec.requester,
            "username": spec.username or self.planned_username(spec.grant_id, spec.requester),
            "account": _plain(spec.account), "tenant_id": self._tenant_or_none(),
            "domain_prefix": self._prefix,
        }  # fmt: skip
        self._outcome(self._jobs.submit(self.customer, spec.grant_id, JOB_REVOKE, payload))

    def extend(self, spec: AccessSpec) -> None:
        """Queued, not awaited: the worker's revocation at the new end does not depend on it
        (the DC's accountExpires is the backstop behind both the worker and the agent)."""
        payload = {
            "requester": spec.requester, "expires_at": iso(spec.expires_at),
            "account": _plain(spec.account), "domain_prefix": self._prefix,
        }  # fmt: skip
        self._jobs.submit(self.customer, spec.grant_id, JOB_EXTEND, payload)

    def check(self) -> list[str]:
        tenant, online = self._jobs.domain(self.customer)
        if not online:
            raise TransientError("no on-prem agent of this customer is online")
        return [f"an on-prem agent is online; domain SID {tenant or 'not reported yet'}"]

    def tenant_id(self) -> str:
        tenant, online = self._jobs.domain(self.customer)
        if tenant is None:
            raise AgentPendingError(
                "no on-prem agent has reported the domain yet", offline=not online
            )
        return tenant

    def list_managed(self) -> list[ManagedAccount]:
        # Drift detection through the agent is not built yet: the reconciler skips this kind.
        raise TransientError("drift detection through the on-prem agent is not available")

    # -- jobs ------------------------------------------------------------------------------

    def _tenant_or_none(self) -> str | None:
        return self._jobs.domain(self.customer)[0]

    def _outcome(self, job: AgentJob) -> dict[str, Any]:
        if job.state == DONE:
            return dict(job.result or {})
        if job.state == FAILED:
            # Taken note of: the next attempt (after the worker's backoff) hands out a new job.
            self._jobs.retire(job.id)
            error = (job.result or {}).get("error") or {}
            cls = _ERRORS.get(str(error.get("kind")), TransientError)
            message = str(error.get("message") or "the agent reported a failure")[:500]
            raise cls(f"on-prem agent: {message}")
        _, online = self._jobs.domain(self.customer)
        raise AgentPendingError(
            f"waiting for the on-prem agent ({job.kind} job {job.id})", offline=not online
        )


def _plain(account: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(account).items() if isinstance(v, str | int | bool | None)}
