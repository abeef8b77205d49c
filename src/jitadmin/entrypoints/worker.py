"""The durable worker: the database is the scheduler, this loop only follows it.

It claims due work with a lease (grants to provision, expire or revoke; outbox notes), runs it
on a bounded pool with a per-tenant cap so one slow tenant cannot hold back the others, renews
the leases of what it is running, and sleeps until the earliest deadline in the database or
until woken because new work was written.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from prometheus_client import start_http_server

from jitadmin.core.errors import AuditTamperedError
from jitadmin.entrypoints.notification_loop import NotificationLoop
from jitadmin.ports import UnitOfWork
from jitadmin.services.agent_jobs import alert_offline_agents
from jitadmin.services.audit_anchor import checkpoint
from jitadmin.services.context import ServiceContext
from jitadmin.services.execution import Claim, process_grant, record_unexpected_failure
from jitadmin.services.notes import deliver_note, record_unexpected_note_failure
from jitadmin.services.reconcile import ReconcileReport, reconcile_due
from jitadmin.wiring import App

log = logging.getLogger("jitadmin.worker")
_Item = TypeVar("_Item", str, int)
PSA_KEY = "psa"
HEARTBEAT_EVERY_S = 1.0  # at most this often; the loop itself runs at least every max_idle_s
AGENT_WATCH_EVERY_S = 15.0  # how often customers without an online on-prem agent are looked for
# In a storm every completion wakes the loop: claim once per few completions (an eighth of what
# is in flight), waiting at most this long for them, instead of one claim query per completion.
GATHER_S = 0.05
PASSED_OVER_RECHECK_S = 0.5


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 8
    per_tenant: int = 2
    lease_s: float = 30.0
    max_idle_s: float = 5.0
    reconcile_interval_s: float = 300.0
    # How often a signed audit checkpoint goes to the log (an anchor outside the database).
    checkpoint_interval_s: float = 3600.0


class Worker:
    def __init__(self, ctx: ServiceContext, options: WorkerOptions | None = None) -> None:
        self.ctx = ctx
        self.options = options or WorkerOptions()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[str, str] = {}  # work key -> tenant key
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._reconciler: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._last_beat = float("-inf")
        self._last_agent_watch = float("-inf")
        self._renew_at = float("-inf")
        self._completed = 0  # since the last claim
        self._claim_after = 1  # completions worth a claim
        self._passed_over = False  # the last claim left due work behind (caps)
        # Notifications run apart: a failing channel never takes a revocation's slot.
        self.notifications = NotificationLoop(
            ctx, self.id, lease_s=self.options.lease_s, max_idle_s=self.options.max_idle_s
        )

    # -- control ---------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()
        self.notifications.wake()

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="jit-work")
        self._thread = threading.Thread(target=self._loop, name="jit-worker", daemon=True)
        self._thread.start()
        self._reconciler = threading.Thread(
            target=self._reconcile_loop, name="jit-reconcile", daemon=True
        )
        self._reconciler.start()
        self.log_checkpoint()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="jit-checkpoint", daemon=True
        )
        self._checkpointer.start()
        self.notifications.start()
        log.info("worker %s started", self.id)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        log.info("worker %s stopping; %d step(s) in flight finish first", self.id, self.in_flight)
        if self._thread is not None:
            self._thread.join(timeout)
        for helper in (self._reconciler, self._checkpointer):
            if helper is not None:
                helper.join(timeout)
        if self._pool is not None:
            # Steps in flight finish; queued ones are cancelled and their claims handed back.
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._release_unstarted()
        self.notifications.stop(timeout)
        log.info("worker %s stopped", self.id)

    def _release_unstarted(self) -> None:
        with self._lock:
            leftover = list(self._in_flight)
            self._in_flight.clear()
        if not leftover:
            return
        with self.ctx.uow() as uow:
            for key in leftover:
                if key.startswith("g:"):
                    uow.grants.release(key[2:], self.id)
                else:
                    uow.outbox.release(int(key[2:]), self.id)
            uow.commit()

    def run_until_idle(self, max_rounds: int = 1000) -> int:
        """Process everything due now, inline (tests and `jitadmin worker --once`)."""
        done = 0
        for _ in range(max_rounds):
            batch = self._claim(limit=self.options.concurrency)
            if not batch:
                return done + self.notifications.run_until_idle()
            for key, _tenant, job in batch:
                self._run(key, job)
                done += 1
        return done

    def reconcile_now(self) -> list[ReconcileReport]:
        """One reconciler pass over every customer not reconciled within the interval."""
        return reconcile_due(self.ctx, self.id, self.options.reconcile_interval_s)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    # -- the loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        renew_every = self.options.lease_s / 3
        while not self._stop.is_set():
            self._gather_completions()
            self._wake.clear()
            try:
                self._heartbeat()
                claim_time = self.ctx.clock.now()
                with self._lock:
                    self._completed = 0
                for key, _tenant, job in self._claim(limit=self._free_slots(), now=claim_time):
                    assert self._pool is not None
                    self._pool.submit(self._run, key, job)
                self._claim_after = max(1, self.in_flight // 8)
                renew_in = self._renew_leases_when_due(renew_every)
                if self._free_slots() == 0:
                    # Nothing could be claimed before a completion wakes us: skip the query.
                    timeout = renew_in
                elif self._passed_over and self.in_flight:
                    # Due work left behind by a tenant's cap: completions wake us; skip the
                    # deadline queries, but look again soon for other tenants' new deadlines.
                    timeout = min(renew_in, PASSED_OVER_RECHECK_S)
                else:
                    timeout = self._seconds_until_next_deadline(claim_time)
                    if self.in_flight:
                        timeout = min(timeout, renew_in)
            except Exception:  # the loop must outlive any single database hiccup
                log.exception("worker loop error; retrying shortly")
                timeout = 1.0
            self._wake.wait(timeout)

    def _gather_completions(self) -> None:
        """After a completion, wait (briefly) for a few more before claiming again."""
        until = time.monotonic() + GATHER_S
        while not self._stop.is_set():
            with self._lock:
                done, busy = self._completed, len(self._in_flight)
            left = until - time.monotonic()
            if done == 0 or done >= self._claim_after or busy == 0 or left <= 0:
                return
            self._wake.clear()
            self._wake.wait(left)

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_beat < HEARTBEAT_EVERY_S:
            return
        with self.ctx.uow() as uow:
            uow.runtime.heartbeat(self.id, self.ctx.clock.now())
            uow.commit()
        self._last_beat = time.monotonic()
        if self._last_beat - self._last_agent_watch >= AGENT_WATCH_EVERY_S:
            self._last_agent_watch = self._last_beat
            self.watch_agents()

    def watch_agents(self) -> int:
        """Alert on grants whose customer has no online on-prem agent (once per grant)."""
        return alert_offline_agents(self.ctx)

    def _reconcile_loop(self) -> None:
        """Every interval, reconcile what nobody else has; the first pass waits one interval,
        so a worker in a restart loop never hammers the tenants."""
        interval = self.options.reconcile_interval_s
        while not self._stop.wait(interval):
            try:
                self.reconcile_now()
            except Exception:  # a database hiccup: the next pass tries again
                log.exception("reconciler pass failed; next one in %.0f s", interval)

    def log_checkpoint(self) -> None:
        """Log the audit chain's signed head (``jitadmin audit verify --checkpoint`` checks it)."""
        try:
            point = checkpoint(self.ctx)
        except AuditTamperedError as error:
            log.error("audit checkpoint refused: %s", error)
            return
        except Exception:  # a database hiccup: the next interval tries again
            log.exception("audit checkpoint failed")
            return
        log.info("audit checkpoint %s (entry %d)", point.value, point.seq)

    def _checkpoint_loop(self) -> None:
        while not self._stop.wait(self.options.checkpoint_interval_s):
            self.log_checkpoint()

    def _free_slots(self) -> int:
        return max(self.options.concurrency - self.in_flight, 0)

    def _claim(
        self, limit: int, now: datetime | None = None
    ) -> list[tuple[str, str, Callable[[], object]]]:
        if limit <= 0:
            return []
        now = now or self.ctx.clock.now()
        lease_until = now + timedelta(seconds=self.options.lease_s)
        claimed: list[tuple[str, str, Callable[[], object]]] = []
        with self._lock:
            busy = Counter(self._in_flight.values())
            running = set(self._in_flight)
        with self.ctx.uow() as uow:
            due_grants = uow.grants.due(now, limit * 4, per_customer=self.options.per_tenant)
            wanted = self._pick(due_grants, "g", limit, busy, running)
            # One statement claims the whole batch; what another worker took meanwhile is left.
            won = uow.grants.claim_many([g for g, _ in wanted], self.id, now, lease_until)
            for grant_id, tenant in wanted:
                if grant_id in won:
                    claimed.append((f"g:{grant_id}", tenant, self._grant_job(grant_id)))
                else:
                    busy[tenant] -= 1
            due_notes = [(m, PSA_KEY) for m, _customer in uow.outbox.due(now, limit * 4)]
            notes = self._pick(due_notes, "o", limit - len(claimed), busy, running)
            won_notes = uow.outbox.claim_many([m for m, _ in notes], self.id, now, lease_until)
            claimed += [(f"o:{m}", PSA_KEY, self._note_job(m)) for m, _ in notes if m in won_notes]
            self._passed_over = len(due_grants) > len(wanted) or len(due_notes) > len(notes)
            uow.commit()
        with self._lock:
            for key, tenant, _job in claimed:
                self._in_flight[key] = tenant
        return claimed

    def _pick(
        self,
        due: list[tuple[_Item, str]],
        prefix: str,
        limit: int,
        busy: Counter[str],
        running: set[str],
    ) -> list[tuple[_Item, str]]:
        """Up to ``limit`` of ``due`` (id, tenant), at most ``per_tenant`` per tenant counting
        what runs already (``busy`` is updated), none that this worker still runs."""
        picked: list[tuple[_Item, str]] = []
        for item, tenant in due:
            if len(picked) >= limit or busy[tenant] >= self.options.per_tenant:
                continue
            if f"{prefix}:{item}" in running:
                continue  # our own lease lapsed mid-run; never run one item twice at once
            busy[tenant] += 1
            picked.append((item, tenant))
        return picked

    def _grant_job(self, grant_id: str) -> Callable[[], object]:
        claim = Claim(self.id)
        return self._guarded(
            f"grant {grant_id}",
            lambda: process_grant(self.ctx, grant_id, claim=claim),
            lambda error: record_unexpected_failure(self.ctx, grant_id, error),
            lambda uow: uow.grants.release(grant_id, self.id),
            lambda: claim.released,
        )

    def _note_job(self, message_id: int) -> Callable[[], object]:
        return self._guarded(
            f"note {message_id}",
            lambda: deliver_note(self.ctx, message_id),
            lambda error: record_unexpected_note_failure(self.ctx, message_id, error),
            lambda uow: uow.outbox.release(message_id, self.id),
        )

    def _guarded(
        self,
        what: str,
        work: Callable[[], object],
        record_failure: Callable[[Exception], bool],
        release: Callable[[UnitOfWork], None],
        released: Callable[[], bool] = lambda: False,
    ) -> Callable[[], object]:
        """``work``, whose unexpected errors are counted and backed off like any failure, so
        the item is never claimed again at once; then the claim is handed back."""

        def job() -> object:
            result: object = None
            try:
                result = work()
            except Exception as error:
                log.exception("%s: unexpected error; backing off", what)
                if not record_failure(error):
                    return None  # the claim is kept until its lease lapses: a backoff too
            if released():
                return result  # the work's own final commit handed the claim back
            with self.ctx.uow() as uow:
                release(uow)
                uow.commit()
            return result

        return job

    def _run(self, key: str, job: Callable[[], object]) -> None:
        try:
            job()
        except Exception:
            log.exception("work item %s failed; its lease will bring it back", key)
        finally:
            with self._lock:
                self._in_flight.pop(key, None)
                self._completed += 1
            self._wake.set()

    def _renew_leases_when_due(self, every_s: float) -> float:
        """Extend the leases of what we run, every ``every_s`` rather than on every wake-up (a
        storm wakes the loop once per completion); returns seconds until the next renewal."""
        now = time.monotonic()
        if now < self._renew_at:
            return self._renew_at - now
        with self._lock:
            grant_ids = [k[2:] for k in self._in_flight if k.startswith("g:")]
        if grant_ids:
            lease_until = self.ctx.clock.now() + timedelta(seconds=self.options.lease_s)
            with self.ctx.uow() as uow:
                uow.grants.renew(grant_ids, self.id, lease_until)
                uow.commit()
        # Only after it worked: a failed renewal is tried again on the loop's next pass (1 s).
        self._renew_at = now + every_s
        return every_s

    def _seconds_until_next_deadline(self, claim_time: datetime) -> float:
        now = self.ctx.clock.now()
        with self.ctx.uow() as uow:
            deadlines = [
                d for d in (uow.grants.next_deadline(now), uow.outbox.next_deadline(now)) if d
            ]
        idle = self.options.max_idle_s  # a separate API process cannot wake us: poll this often
        if not deadlines:
            return idle
        deadline = min(deadlines)
        if deadline <= claim_time:
            # Due already but not ours to take (tenant cap, pool full): a completion wakes us.
            return idle
        return min(max((deadline - now).total_seconds(), 0.0), idle)


def attach_worker(app: App) -> Worker:
    """Build the worker from settings and let in-process writes wake it."""
    s = app.settings
    worker = Worker(
        app.ctx,
        WorkerOptions(
            concurrency=s.worker_concurrency,
            per_tenant=s.worker_per_tenant,
            lease_s=s.worker_lease_seconds,
            max_idle_s=s.worker_max_idle_seconds,
            reconcile_interval_s=s.reconcile_interval_seconds,
        ),
    )
    app.ctx.wake = worker.wake
    if s.worker_metrics_port is not None:
        # A worker without the API: its event metrics (lag, errors, drift) on their own port.
        start_http_server(s.worker_metrics_port, registry=app.metrics.registry)
    return worker
