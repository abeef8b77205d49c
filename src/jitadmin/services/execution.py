"""Driving a claimed grant forward: provision, expire, revoke. Called by the worker.

Each outside call is bracketed by short transactions; progress is committed as it happens, so a
crash at any point leaves a grant that the next attempt can finish. "Revoked" is only written
after the identity provider's ``revoke`` returned, i.e. after it read the target back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jitadmin.core import texts
from jitadmin.core.errors import (
    AdapterError,
    AgentPendingError,
    TenantMismatchError,
    TransientError,
)
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import REVOCATION_PENDING, WORKER, Failure, Grant, GrantState
from jitadmin.core.retry import MAX_REVOKE_RETRY_AFTER_S
from jitadmin.ports import (
    AccessSpec,
    AuditQuery,
    IdentityProvider,
    RevokeSpec,
    UnitOfWork,
)
from jitadmin.services.agent_jobs import alert_offline
from jitadmin.services.backoff import SYSTEM, honoured_retry_after
from jitadmin.services.context import ServiceContext, error_kind, log
from jitadmin.services.grants import password_context
from jitadmin.services.notifications import notify
from jitadmin.services.progress import progress_recorder

S = GrantState
# While an agent works on a step, the worker looks again this often (results come sooner).
AGENT_RECHECK_S = 30.0


def process_grant(
    ctx: ServiceContext, grant_id: str, *, claim: Claim | None = None
) -> GrantState | None:
    """Do whatever the grant needs now; returns its state afterwards (None if it vanished).

    With ``claim`` (the worker's), the transaction that finishes the work also hands the claim
    back, and ``claim.released`` says so: one commit fewer per grant."""
    with ctx.uow() as uow:
        grant = uow.grants.get(grant_id, lock=True)
        if grant is None:
            return None
        now = ctx.clock.now()
        expired = grant.expire(now)
        if expired is not None:
            uow.audit.append(expired)
            uow.grants.save(grant)
            uow.commit()
        undecided = grant.expire_approval(now)
        if undecided is not None:
            # Nothing was created in the target: the request just ends, noted on the ticket.
            uow.audit.append(undecided)
            uow.grants.save(grant)
            uow.grants.set_password_sealed(grant.id, None)
            uow.outbox.enqueue(
                grant,
                texts.marker(grant.id, "approval_expired"),
                texts.approval_expired_note(grant),
                now,
            )
            uow.commit()
            ctx.wake()
        if grant.state not in WORKER:
            return grant.state
        customer = uow.customers.get(grant.customer)
        assert customer is not None, "grants always belong to a customer"
        try:
            identity = ctx.identity_for(uow, customer, grant.identity_provider)
        except Exception as error:  # noqa: BLE001 - a broken connection must not stop the loop
            identity = None
            setup_error = error
        sealed = uow.grants.password_sealed(grant.id) if grant.state is S.PROVISIONING else None
    if identity is None:
        return _record_failure(ctx, grant.id, TransientError(f"connection unusable: {setup_error}"))
    if grant.state is S.PROVISIONING:
        password = ctx.box.open(sealed, password_context(grant.id)) if sealed else ""
        return _provision(ctx, identity, grant, password, claim)
    return _revoke(ctx, identity, grant, claim)


class Claim:
    """The worker's claim on a grant, to be released with the work's final commit."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.released = False

    def commit_released(self, uow: UnitOfWork, grant_id: str) -> None:
        """Hand the claim back in ``uow`` and commit it (released only once committed)."""
        uow.grants.release(grant_id, self.worker)
        uow.commit()
        self.released = True


def _commit(uow: UnitOfWork, grant_id: str, claim: Claim | None) -> None:
    if claim is None:
        uow.commit()
    else:
        claim.commit_released(uow, grant_id)


def _pin_tenant(ctx: ServiceContext, identity: IdentityProvider, grant: Grant) -> None:
    """Before anything is made: note which tenant this grant lives in (or check it)."""
    if grant.tenant_id is not None:
        _check_tenant(identity, grant)
        return
    tenant = identity.tenant_id()
    with ctx.uow() as uow:
        current = uow.grants.get(grant.id, lock=True)
        if current is None or current.tenant_id is not None:
            return
        current.tenant_id = tenant
        uow.grants.save(current)
        uow.audit.append(
            AuditEvent(
                kind="grant.tenant_pinned", actor=SYSTEM, at=ctx.clock.now(), grant_id=grant.id,
                customer=grant.customer, data={"tenant_id": tenant},
            )
        )  # fmt: skip
        uow.commit()
    grant.tenant_id = tenant


def _check_tenant(identity: IdentityProvider, grant: Grant) -> None:
    """Refuse to touch (or "verify" in) any tenant but the one the grant was provisioned in.

    Grants from before tenant pinning (``tenant_id`` None) are revoked as before."""
    if grant.tenant_id is None:
        return
    reached = identity.tenant_id()
    if reached.strip().lower() != grant.tenant_id.strip().lower():
        raise TenantMismatchError(
            f"refusing to revoke or verify in another tenant: grant {grant.id} was provisioned "
            f"in tenant {grant.tenant_id}, but the {grant.identity_provider} connection now "
            f"reaches {reached}. Point the connection back at {grant.tenant_id} to revoke."
        )


def _provision(
    ctx: ServiceContext,
    identity: IdentityProvider,
    grant: Grant,
    password: str,
    claim: Claim | None = None,
) -> GrantState:
    spec = AccessSpec(grant.id, grant.requester, password, grant.expires_at, dict(grant.account))
    try:
        _pin_tenant(ctx, identity, grant)
        result = identity.grant(spec, progress_recorder(ctx, grant.id))
    except AgentPendingError as error:
        return _wait_for_agent(ctx, grant.id, error)
    except AdapterError as error:
        return _record_failure(ctx, grant.id, error)
    except Exception as error:  # noqa: BLE001 - unknown failures are retried, never lost
        log.exception("grant %s: unexpected error while provisioning", grant.id)
        return _record_failure(
            ctx, grant.id, TransientError(f"unexpected error: {type(error).__name__}")
        )
    with ctx.uow() as uow:
        current = uow.grants.get(grant.id, lock=True)
        assert current is not None
        if current.state is not S.PROVISIONING:
            # Revoked while we were provisioning: the revoke path will clean up.
            return current.state
        now = ctx.clock.now()
        uow.audit.append(current.activate(result.username, result.account, actor=SYSTEM, at=now))
        uow.grants.save(current)
        if result.temporary_access_pass is not None:
            # The pass is what the technician signs in with: it takes the password's place,
            # sealed the same way (shown once to the requester, revealable by an admin).
            sealed = ctx.box.seal(result.temporary_access_pass, password_context(current.id))
            uow.grants.set_password_sealed(current.id, sealed)
        notify(ctx, uow, "grant.active", current, now)
        uow.outbox.enqueue(
            current,
            texts.marker(current.id, "granted"),
            texts.granted_note(current, ctx.connectors.wording(current.identity_provider)),
            now,
        )
        _commit(uow, current.id, claim)
    ctx.wake()
    return S.ACTIVE


def _revoke(
    ctx: ServiceContext, identity: IdentityProvider, grant: Grant, claim: Claim | None = None
) -> GrantState:
    spec = RevokeSpec(grant.id, grant.requester, grant.username, dict(grant.account))
    try:
        _check_tenant(identity, grant)
        identity.revoke(spec, progress_recorder(ctx, grant.id))
    except AgentPendingError as error:
        return _wait_for_agent(ctx, grant.id, error)
    except AdapterError as error:
        return _record_failure(ctx, grant.id, error)
    except Exception as error:  # noqa: BLE001
        log.exception("grant %s: unexpected error while revoking", grant.id)
        return _record_failure(
            ctx, grant.id, TransientError(f"unexpected error: {type(error).__name__}")
        )
    with ctx.uow() as uow:
        current = uow.grants.get(grant.id, lock=True)
        assert current is not None
        if current.state not in REVOCATION_PENDING:
            # Another worker finished it first (its lease had lapsed); nothing left to record.
            return current.state
        now = ctx.clock.now()
        due = _revocation_due(uow, current)
        uow.audit.append(current.transition(S.REVOKED, actor=SYSTEM, at=now, verified=True))
        uow.grants.save(current)
        # The one-time password is worthless now; drop even its ciphertext.
        uow.grants.set_password_sealed(current.id, None)
        notify(ctx, uow, "grant.revoked", current, now)
        uow.outbox.enqueue(
            current,
            texts.marker(current.id, "revoked"),
            texts.revoked_note(current, ctx.connectors.wording(current.identity_provider)),
            now,
        )
        _commit(uow, current.id, claim)
    log.info("grant %s revoked and verified", grant.id)
    ctx.metrics.revocation_completed(grant.identity_provider, (now - due).total_seconds())
    return S.REVOKED


def _revocation_due(uow: UnitOfWork, grant: Grant) -> datetime:
    """When access should have ended: the expiry, or the revoke request if that came first."""
    if grant.revoke_requested_by is None and grant.activated_at is not None:
        # Active grants without a revoke request only go to revoking by expiring, at or after
        # ``expires_at``: no need to look the event up.
        return grant.expires_at
    requested = uow.audit.search(AuditQuery(grant_id=grant.id, kind="grant.revoking"), limit=1)
    return min([grant.expires_at, *(e.at for e in requested)])


def record_unexpected_failure(ctx: ServiceContext, grant_id: str, error: Exception) -> bool:
    """After ``process_grant`` itself raised: count the attempt and back off like any other
    failure, so a poison grant (an undecryptable password, a row the code cannot handle) is
    tried once per backoff step, never in a hot loop. False when not even that could be
    written; the caller then leaves its lease to lapse, which is a backoff too."""
    failure = TransientError(f"unexpected error: {type(error).__name__}")
    try:
        _record_failure(ctx, grant_id, failure)
        return True
    except Exception:  # noqa: BLE001 - e.g. a row that cannot even be loaded
        log.exception("grant %s: could not record a failed attempt; deferring it", grant_id)
    try:
        with ctx.uow() as uow:
            # Without the attempt count at hand: the longest backoff revocation work allows.
            until = ctx.clock.now() + timedelta(seconds=MAX_REVOKE_RETRY_AFTER_S)
            uow.grants.defer(grant_id, failure.message, until)
            uow.commit()
        return True
    except Exception:  # noqa: BLE001 - the database itself is failing
        log.exception("grant %s: could not defer it either; its lease brings it back", grant_id)
        return False


def _wait_for_agent(ctx: ServiceContext, grant_id: str, error: AgentPendingError) -> GrantState:
    """The step is an on-prem agent's job now: look again later without counting an attempt
    (the agent's result brings the attempt forward), and alert when no agent is online."""
    with ctx.uow() as uow:
        grant = uow.grants.get(grant_id, lock=True)
        assert grant is not None
        now = ctx.clock.now()
        uow.grants.postpone(grant_id, now + timedelta(seconds=AGENT_RECHECK_S))
        alerted = error.offline and alert_offline(ctx, uow, grant, now)
        uow.commit()
    if alerted:
        ctx.wake()  # the ticket note
    return grant.state


def _record_failure(ctx: ServiceContext, grant_id: str, error: Exception) -> GrantState:
    """Count the attempt and schedule the next one, or move the grant on when out of budget
    (the rules: ``Grant.record_failure``); notes, metrics and logs of the outcome here."""
    message = str(error)[:1000]
    with ctx.uow() as uow:
        grant = uow.grants.get(grant_id, lock=True)
        assert grant is not None
        now = ctx.clock.now()
        if not grant.needs_worker(now):
            return grant.state  # finished elsewhere meanwhile
        ctx.metrics.connector_error(grant.identity_provider, error_kind(error))
        before, tried = grant.state, grant.attempts + 1
        retry_after = honoured_retry_after(
            ctx, uow, error, limit_s=grant.retry_limit_s,
            work="provisioning" if before is S.PROVISIONING else "revocation",
            connector=grant.identity_provider, grant_id=grant.id, customer=grant.customer,
        )  # fmt: skip
        failure = Failure(
            message,
            permanent=isinstance(error, AdapterError) and not isinstance(error, TransientError),
            # Another tenant will not become the right one by retrying: say so at once.
            refused=isinstance(error, TenantMismatchError),
            retry_after_s=retry_after,
        )
        for event in grant.record_failure(failure, at=now, tuning=ctx.tuning, retry=ctx.retry):
            uow.audit.append(event)
        _tell(uow, grant, before, tried, message, now)
        if before is S.REVOKING and grant.state is S.REVOKE_FAILED:
            notify(ctx, uow, "grant.revoke_failed", grant, now, attempts=tried)
        uow.grants.save(grant)
        uow.commit()
        state = grant.state
    ctx.wake()
    return state


def _tell(
    uow: UnitOfWork, grant: Grant, before: GrantState, tried: int, message: str, now: datetime
) -> None:
    """The ticket note and log line for where a failed attempt left the grant."""
    if before is S.PROVISIONING and grant.state is not S.PROVISIONING:
        uow.outbox.enqueue(
            grant, texts.marker(grant.id, "failed"), texts.provision_failed_note(grant), now
        )
        log.warning("grant %s: provisioning failed: %s", grant.id, message)
    elif before is S.REVOKING and grant.state is S.REVOKE_FAILED:
        uow.outbox.enqueue(
            grant, texts.marker(grant.id, "revoke_failed"), texts.revoke_failed_note(grant), now
        )
        log.error(
            "grant %s: revocation not verified after %d attempts: %s", grant.id, tried, message
        )
    elif grant.state is S.REVOKE_FAILED:
        log.error("grant %s: revocation still failing: %s", grant.id, message)
