"""The worker's notification loop: its own thread, claims and pool, so a channel that is down
or slow never takes a slot that provisioning, revocation or a ticket note needs.

Deliveries are claimed with a lease like grants and notes (a dead worker's claims come back);
the loop sleeps until the earliest delivery is due or it is woken by new work.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from jitadmin.services.context import ServiceContext
from jitadmin.services.notification_delivery import deliver_notification

log = logging.getLogger("jitadmin.worker")


class NotificationLoop:
    def __init__(
        self,
        ctx: ServiceContext,
        worker_id: str,
        *,
        lease_s: float,
        max_idle_s: float,
        concurrency: int = 2,
    ) -> None:
        self.ctx = ctx
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.max_idle_s = max_idle_s
        self.concurrency = concurrency
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="jit-notify")
        self._thread = threading.Thread(target=self._loop, name="jit-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            leftover, self._in_flight = list(self._in_flight), set()
        if leftover:
            with self.ctx.uow() as uow:
                for pk in leftover:
                    uow.notifications.release(pk, self.worker_id)
                uow.commit()

    def run_until_idle(self, max_rounds: int = 1000) -> int:
        """Deliver everything due now, inline (tests and `jitadmin worker --once`)."""
        done = 0
        for _ in range(max_rounds):
            batch = self._claim(self.concurrency)
            if not batch:
                return done
            for pk in batch:
                self._run(pk)
                done += 1
        return done

    def _claim(self, limit: int) -> list[int]:
        if limit <= 0:
            return []
        now = self.ctx.clock.now()
        lease_until = now + timedelta(seconds=self.lease_s)
        with self._lock:
            running = set(self._in_flight)
        claimed: list[int] = []
        with self.ctx.uow() as uow:
            for pk in uow.notifications.due(now, limit * 2):
                if len(claimed) >= limit or pk in running:
                    continue
                if uow.notifications.claim(pk, self.worker_id, now, lease_until):
                    claimed.append(pk)
            uow.commit()
        with self._lock:
            self._in_flight.update(claimed)
        return claimed

    def _run(self, pk: int) -> None:
        try:
            deliver_notification(self.ctx, pk)
        except Exception:
            log.exception("notification %s failed; its lease will bring it back", pk)
        else:
            with self.ctx.uow() as uow:
                uow.notifications.release(pk, self.worker_id)
                uow.commit()
        finally:
            with self._lock:
                self._in_flight.discard(pk)
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            timeout = self.max_idle_s
            try:
                with self._lock:
                    free = self.concurrency - len(self._in_flight)
                for pk in self._claim(free):
                    assert self._pool is not None
                    self._pool.submit(self._run, pk)
                now = self.ctx.clock.now()
                with self.ctx.uow() as uow:
                    deadline = uow.notifications.next_deadline(now)
                if deadline is not None and deadline > now:
                    timeout = min((deadline - now).total_seconds(), self.max_idle_s)
            except Exception:  # the loop must outlive any single database hiccup
                log.exception("notification loop error; retrying shortly")
                timeout = 1.0
            self._wake.wait(timeout)
