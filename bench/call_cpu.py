"""CPU of the two things a revocation repeats most: one Graph call and one progress step.

    .venv/bin/python -m bench.call_cpu

A Graph GET through ``GraphClient`` (a 404 for an unknown user, like the read-backs) against
``jitadmin emulate`` in a subprocess, 1 000 times; then one ``record()`` step transaction (read
the grant's progress, update it, append its audit entry, commit) on SQLite, 500 times. Both are
this process's CPU time (``time.process_time()``) divided by the count.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from bench.common import JITADMIN, SECRET_KEY, customers, stop_process
from jitadmin.adapters.m365.client import GraphClient
from jitadmin.connectors import emulator_world
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.grant import Grant, GrantState
from jitadmin.entrypoints.demo import seed

try:
    from jitadmin.services.progress import progress_recorder
except ImportError:  # before commit 56c7760 (how the "before" figures were taken)
    from jitadmin.services.execution import (  # type: ignore[attr-defined,no-redef]
        _recorder as progress_recorder,
    )
from jitadmin.settings import Settings
from jitadmin.wiring import build


def graph_call_ms(calls: int = 1000, port: int = 8179) -> float:
    with tempfile.TemporaryDirectory(prefix="jit-call-") as tmp:
        out = Path(tmp) / "emulators.json"
        server = subprocess.Popen(
            [JITADMIN, "emulate", "--port", str(port), "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                if out.exists() and out.stat().st_size:
                    break
                time.sleep(0.1)  # start-up of a subprocess; not a test
            graph = json.loads(out.read_text())["graph"]
            client = GraphClient.connect(
                graph["tenant_id"], graph["client_id"], graph["client_secret"],
                authority_url=graph["authority_url"], graph_url=graph["base_url"],
                egress=EgressPolicy.parse(["127.0.0.0/8"]),
            )  # fmt: skip
            path = f"/users/{uuid.uuid4()}"
            client.get_optional(path)  # token, connection
            started = time.process_time()
            for _ in range(calls):
                client.get_optional(path)
            spent = time.process_time() - started
            client.close()
        finally:
            stop_process(server)
    return 1000 * spent / calls


def record_step_ms(steps: int = 500) -> float:
    with tempfile.TemporaryDirectory(prefix="jit-step-") as tmp:
        world = emulator_world(customers=customers(1))
        world.start()
        app = build(
            Settings(
                data_dir=Path(tmp),
                database_url=f"sqlite:///{Path(tmp) / 'j.db'}",
                secret_key=SecretStr(SECRET_KEY),
            )
        )
        try:
            seed(app, world)
            customer, now = world.customers[0], datetime.now(UTC)
            grant = Grant(
                id=str(uuid.uuid4()), customer=customer.slug, identity_provider="m365",
                ticket_id=customer.open_ticket_ids[0], requester="tech@msp.example",
                reason="bench", duration_minutes=60, created_at=now,
                expires_at=now + timedelta(days=1), state=GrantState.REVOKING,
            )  # fmt: skip
            with app.ctx.uow() as uow:
                uow.grants.add(grant, None)
                uow.commit()
            record = progress_recorder(app.ctx, grant.id)
            started = time.process_time()
            for n in range(steps):
                record("user_disabled", {"n": n})
            spent = time.process_time() - started
        finally:
            app.close()
            world.stop()
    return 1000 * spent / steps


if __name__ == "__main__":
    print(json.dumps({"graph_call_ms": graph_call_ms(), "record_step_ms": record_step_ms()}))
