"""The drift reconciler: what the targets show against what the ledger says.

For every connected customer and identity provider it lists the accounts tagged as jitadmin's
(never any other account) and compares:

* a tagged account that holds admin rights although no unfinished grant owns it (someone put
  the tech account back into Domain Admins, or gave the temporary M365 account a role again)
  is revoked through the adapter's own idempotent, verified ``revoke``, audited, counted and
  noted on the ticket of the grant it belonged to;
* an active grant whose access is gone on the target is flagged (audit event and
  ``Grant.access_missing_at``; GET /grants/{id} shows it as a ``last_error`` starting with
  ``drift:``) without changing its state: it still ends, and is revoked, on time.

Several workers may run it; a lease row per customer and kind lets one at a time do each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jitadmin.core.clock import iso
from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import Grant, GrantState
from jitadmin.core.texts import marker, neutral
from jitadmin.ports import Customer, IdentityProvider, ManagedAccount, RevokeSpec, UnitOfWork
from jitadmin.services.context import ServiceContext, error_kind, log
from jitadmin.services.notifications import notify
from jitadmin.services.tampering import tampering_seen
from jitadmin.services.tenancy import unfinished_grants

ACTOR = "system:reconciler"
ADMIN_WITHOUT_GRANT = "admin_without_grant"
ACCESS_MISSING = "access_missing"
# AD keeps one tech account per requester; this many of a customer's latest grants are searched
# for the one an account last belonged to (only for the ticket note; safety never depends on it).
_HISTORY = 500


@dataclass
class ReconcileReport:
    customer: str
    kind: str
    checked: int = 0
    revoked: list[str] = field(default_factory=list)  # usernames whose rights were taken away
    flagged: list[str] = field(default_factory=list)  # grant ids whose access was missing
    errors: list[str] = field(default_factory=list)


def reconcile_due(
    ctx: ServiceContext, worker: str, interval_s: float, lease_s: float = 600.0
) -> list[ReconcileReport]:
    """Reconcile every customer and kind not reconciled within ``interval_s`` by anyone."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        targets = [
            (customer, kind)
            for customer in uow.customers.all()
            for kind in sorted(uow.connections.kinds(customer.slug))
        ]
    reports = []
    for customer, kind in targets:
        with ctx.uow() as uow:
            claimed = uow.runtime.claim_reconcile(
                customer.slug, kind, worker, now, now + timedelta(seconds=lease_s),
                not_run_since=now - timedelta(seconds=interval_s),
            )  # fmt: skip
            uow.commit()
        if not claimed:
            continue
        try:
            reports.append(reconcile(ctx, customer, kind))
        finally:
            with ctx.uow() as uow:
                uow.runtime.finish_reconcile(customer.slug, kind, worker, now)
                uow.commit()
    return reports


def reconcile(ctx: ServiceContext, customer: Customer, kind: str) -> ReconcileReport:
    """One pass over one customer's tenant or domain."""
    report = ReconcileReport(customer.slug, kind)
    started = ctx.clock.now()
    try:
        with ctx.uow() as uow:
            identity = ctx.identity_for(uow, customer, kind)
        accounts = identity.list_managed()
    except Exception as error:  # noqa: BLE001 - one broken tenant must not stop the others
        ctx.metrics.connector_error(kind, error_kind(error))
        log.warning("reconcile %s/%s: cannot list managed accounts: %s", customer.slug, kind, error)
        report.errors.append(str(error)[:300])
        return report
    report.checked = len(accounts)
    ledger = _recorded_owners(ctx, customer.slug, kind, accounts)
    for account in accounts:
        owner = ledger.get(account.object_id)
        if owner is not None:
            # Ours by the object id we recorded, but its tag or name no longer says so.
            tampering_seen(ctx, owner.id, ACTOR, "employeeType or displayName")
        if not account.holds_admin or (not account.tagged and owner is None):
            continue  # no rights, or someone else's administrator: never touched
        _undo_if_drift(ctx, identity, customer, kind, account, started, report, owner)
    _flag_missing_access(ctx, customer, kind, accounts, started, report)
    return report


# -- admin rights without a grant ------------------------------------------------------------


def _recorded_owners(
    ctx: ServiceContext, customer: str, kind: str, accounts: list[ManagedAccount]
) -> dict[str, Grant]:
    """For accounts whose attributes name no grant (an untagged Global Administrator, a
    renamed tagged account): the newest grant whose recorded object id they carry."""
    unnamed = [a.object_id for a in accounts if a.grant_id is None and a.requester is None]
    if not unnamed:
        return {}
    with ctx.uow() as uow:
        grants = uow.grants.find_by_object_ids(customer, kind, unnamed)
    owners: dict[str, Grant] = {}
    for grant in grants:  # newest first: keep the first seen
        key = grant.account.get("user_id") or grant.account.get("object_guid")
        if isinstance(key, str):
            owners.setdefault(key, grant)
    return owners


def _owns(grant: Grant, account: ManagedAccount) -> bool:
    """The object id the grant recorded, first. Else M365: one account per grant, named after
    it; AD: one tech account per requester, so any grant of its owner owns it."""
    recorded = grant.account.get("user_id") or grant.account.get("object_guid")
    if recorded is not None and recorded == account.object_id:
        return True
    if account.grant_id is not None:
        return grant.id == account.grant_id
    return account.requester is not None and grant.requester.strip().lower() == account.requester


def _last_owner(uow: UnitOfWork, customer: str, kind: str, account: ManagedAccount) -> Grant | None:
    """The grant the account last belonged to, for the ticket note (None: unknown)."""
    if account.grant_id is not None:
        grant = uow.grants.get(account.grant_id)
        if grant is None or grant.customer != customer or grant.identity_provider != kind:
            return None
        return grant
    history = uow.grants.find(customer=customer, limit=_HISTORY)  # newest first
    return next((g for g in history if g.identity_provider == kind and _owns(g, account)), None)


def _undo_if_drift(
    ctx: ServiceContext,
    identity: IdentityProvider,
    customer: Customer,
    kind: str,
    account: ManagedAccount,
    started: datetime,
    report: ReconcileReport,
    owner: Grant | None = None,
) -> None:
    with ctx.uow() as uow:
        if any(_owns(g, account) for g in unfinished_grants(uow, customer.slug, kind)):
            return  # a grant owns it: the worker is granting, holding or revoking it
        grant = owner or _last_owner(uow, customer.slug, kind, account)
        if grant is not None and grant.revoked_at is not None and grant.revoked_at >= started:
            return  # revoked while we listed: the listing is older than the revocation
        detected = _event(
            "drift.detected", ctx.clock.now(), customer, grant, account, drift=ADMIN_WITHOUT_GRANT
        )
        uow.audit.append(detected)
        notify(
            ctx, uow, "drift.detected", grant, detected.at, customer=customer.slug,
            identity_provider=kind, account=account.username, drift=ADMIN_WITHOUT_GRANT,
        )  # fmt: skip
        uow.commit()
    ctx.metrics.drift(ADMIN_WITHOUT_GRANT)
    log.warning(
        "drift: %s in %s/%s holds admin rights without a grant; revoking",
        account.username, customer.slug, kind,
    )  # fmt: skip
    spec = _revoke_spec(account, grant)
    if spec is None:
        _revoke_failed(ctx, customer, grant, account, "no grant id to prove the account is ours")
        return
    steps: list[str] = []
    try:
        identity.revoke(spec, lambda step, _data: steps.append(step))
    except Exception as error:  # noqa: BLE001 - retried on the next pass
        ctx.metrics.connector_error(kind, error_kind(error))
        _revoke_failed(ctx, customer, grant, account, str(error)[:500])
        report.errors.append(f"{account.username}: {str(error)[:300]}")
        return
    with ctx.uow() as uow:
        now = ctx.clock.now()
        uow.audit.append(_event("drift.revoked", now, customer, grant, account, steps=steps))
        if grant is not None:
            sequence = 1 + sum(":drift-" in m.marker for m in uow.outbox.for_grant(grant.id))
            tag = marker(grant.id, f"drift-{sequence}")
            uow.outbox.enqueue(grant, tag, _drift_note(ctx, grant, account, now, tag), now)
        uow.commit()
    ctx.wake()
    report.revoked.append(account.username)


def _revoke_spec(account: ManagedAccount, grant: Grant | None) -> RevokeSpec | None:
    """What the adapter's revoke needs to find exactly this object and prove it is ours."""
    grant_id = account.grant_id or (grant.id if grant is not None else None)
    requester = grant.requester if grant is not None else account.requester
    if account.grant_id is None and account.requester is None and grant is None:
        return None
    return RevokeSpec(
        grant_id=grant_id or f"drift:{account.object_id}",
        requester=requester or "",
        username=account.username,
        account=dict(account.account),
    )


def _revoke_failed(
    ctx: ServiceContext, customer: Customer, grant: Grant | None, account: ManagedAccount, why: str
) -> None:
    log.error("drift: could not revoke %s in %s: %s", account.username, customer.slug, why)
    with ctx.uow() as uow:
        uow.audit.append(
            _event("drift.revoke_failed", ctx.clock.now(), customer, grant, account, error=why)
        )
        uow.commit()


def _drift_note(
    ctx: ServiceContext, grant: Grant, account: ManagedAccount, at: datetime, tag: str
) -> str:
    what = ctx.connectors.wording(grant.identity_provider).privileged_group
    return (
        f"WARNING: {neutral(account.username)} was found in {what} at {iso(at)} although grant "
        f"{grant.id} had ended. jitadmin has taken the rights away again and verified it. "
        "Someone gave them back by hand: please find out who.\n"
        f"[{tag}]"
    )


# -- active grants whose access is gone ------------------------------------------------------


def _account_of(grant: Grant, accounts: list[ManagedAccount]) -> ManagedAccount | None:
    key = grant.account.get("user_id") or grant.account.get("object_guid")
    return next((a for a in accounts if key and a.object_id == key), None)


def _flag_missing_access(
    ctx: ServiceContext,
    customer: Customer,
    kind: str,
    accounts: list[ManagedAccount],
    started: datetime,
    report: ReconcileReport,
) -> None:
    with ctx.uow() as uow:
        active = [
            g
            for g in uow.grants.find(state=GrantState.ACTIVE.value, customer=customer.slug)
            if g.identity_provider == kind
        ]
    for candidate in active:
        if candidate.activated_at is None or candidate.activated_at >= started:
            continue  # activated while we listed
        account = _account_of(candidate, accounts)
        has_access = account is not None and account.holds_admin and account.enabled
        if has_access != candidate.access_missing:
            continue  # nothing new: present and unflagged, or missing and flagged already
        with ctx.uow() as uow:
            grant = uow.grants.get(candidate.id, lock=True)
            if grant is None or grant.state is not GrantState.ACTIVE:
                continue
            now = ctx.clock.now()
            if has_access:
                grant.clear_access_missing()
                kind_of_event = "drift.access_restored"
            else:
                grant.flag_access_missing(now)
                kind_of_event = "drift.access_missing"
            uow.grants.save(grant)
            uow.audit.append(_event(kind_of_event, now, customer, grant, account))
            uow.commit()
        if not has_access:
            ctx.metrics.drift(ACCESS_MISSING)
            report.flagged.append(candidate.id)
            log.warning("drift: active grant %s has no admin access on the target", candidate.id)


def _event(
    kind: str,
    at: datetime,
    customer: Customer,
    grant: Grant | None,
    account: ManagedAccount | None,
    **data: Any,
) -> AuditEvent:
    details: dict[str, Any] = dict(data)
    if account is not None:
        details.update(
            username=account.username, object_id=account.object_id, enabled=account.enabled,
            holds_admin=account.holds_admin,
        )  # fmt: skip
    if grant is not None:
        details["grant_state"] = grant.state.value
    return AuditEvent(
        kind=kind,
        actor=ACTOR,
        at=at,
        grant_id=grant.id if grant is not None else None,
        customer=customer.slug,
        data=details,
    )
