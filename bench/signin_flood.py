"""An anonymous sign-in flood (issue 12 item 6): how many rows it writes, and what a refused
attempt costs. Not part of ``bench.run``; run it alone:

    .venv/bin/python -m bench.signin_flood [--attempts 20000] [--database-url URL]

The flood mixes empty and oversized passwords and wrong guesses for unknown usernames from 200
addresses, with the default limits, all within one lockout window.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr

from bench.common import SECRET_KEY, log
from jitadmin.core.errors import SignInFailedError, SignInThrottledError
from jitadmin.ports import AuditQuery
from jitadmin.services import sessions
from jitadmin.settings import Settings
from jitadmin.wiring import build

POLICY = sessions.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))


def flood(attempts: int, database_url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp), secret_key=SecretStr(SECRET_KEY), database_url=database_url
        )
        app = build(settings)
        outcomes = {"failed": 0, "throttled": 0}
        started = time.perf_counter()
        for i in range(attempts):
            password = ["", "x" * 5000, "guess"][i % 3]
            try:
                client = f"192.0.2.{i % 200}"
                sessions.sign_in(app.ctx, f"user{i}", password, POLICY, client=client)
            except SignInThrottledError:
                outcomes["throttled"] += 1
            except SignInFailedError:
                outcomes["failed"] += 1
        elapsed = time.perf_counter() - started
        with app.ctx.uow() as uow:
            rows = uow.audit.count(AuditQuery()).count
        app.close()
    result = {"attempts": attempts, "audit_rows": rows, "seconds": elapsed,
              "attempts_per_s": attempts / elapsed, **outcomes}  # fmt: skip
    log(f"signin flood: {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--attempts", type=int, default=20_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    flood(args.attempts, args.database_url)


if __name__ == "__main__":
    main()
