"""`jitadmin worker` that SIGKILLs itself right after one chosen progress step is committed.

Test-only; run as ``python tests/support/crash_worker.py`` with the usual ``JITADMIN_*``
settings and ``JITADMIN_TEST_CRASH_AFTER=<requester>|<step>`` (unset: an ordinary worker). With
``JITADMIN_TEST_START_GATE=<file>`` it loads everything, then waits for that file before it starts
working, so a test can have the next worker ready while the last one is still running.
Nothing in production code knows about it:
this script builds the app exactly as ``jitadmin worker`` does and wraps the service context's
unit-of-work factory. When a transaction that appended the audit event ``account.<step>`` for a
grant of ``<requester>`` has committed, the process sends itself SIGKILL — a real, unclean
death between two steps, with whatever else was in flight lost with it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, cast

from jitadmin.core.events import AuditEvent
from jitadmin.entrypoints.worker import attach_worker
from jitadmin.ports import UnitOfWork
from jitadmin.settings import Settings
from jitadmin.wiring import build

CRASH_ENV = "JITADMIN_TEST_CRASH_AFTER"
GATE_ENV = "JITADMIN_TEST_START_GATE"


class _WatchedAudit:
    def __init__(self, inner: Any, seen: list[AuditEvent]) -> None:
        self._inner = inner
        self._seen = seen

    def append(self, event: AuditEvent) -> None:
        self._inner.append(event)
        self._seen.append(event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class CrashAfterCommit:
    """A unit of work that kills the process once the chosen step's commit has happened."""

    def __init__(self, inner: Any, requester: str, kind: str) -> None:
        self._inner = inner
        self._requester = requester
        self._kind = kind
        self._seen: list[AuditEvent] = []

    def __enter__(self) -> CrashAfterCommit:
        self._inner.__enter__()
        self.audit = _WatchedAudit(self._inner.audit, self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def commit(self) -> None:
        targeted = [e for e in self._seen if e.kind == self._kind and e.grant_id]
        hit = any(
            (grant := self._inner.grants.get(e.grant_id)) is not None
            and grant.requester == self._requester
            for e in targeted
        )
        self._inner.commit()
        self._seen.clear()
        if hit:
            logging.getLogger("crash_worker").warning("committed %s: SIGKILL now", self._kind)
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build(Settings(), upgrade=False)
    if crash := os.environ.get(CRASH_ENV):
        requester, step = crash.split("|", 1)
        plain = app.ctx.uow

        def crashing_uow(credential: str | None = None) -> UnitOfWork:
            inner = plain(credential)
            return cast(UnitOfWork, CrashAfterCommit(inner, requester, f"account.{step}"))

        app.ctx.uow = crashing_uow
    worker = attach_worker(app)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if gate := os.environ.get(GATE_ENV):
        while not Path(gate).exists() and not stop.wait(0.01):
            pass
    worker.start()
    stop.wait()
    worker.stop()
    app.close()


if __name__ == "__main__":
    main()
