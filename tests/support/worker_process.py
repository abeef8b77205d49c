"""Real worker processes for the reliability tests: `jitadmin worker`, or the crash variant
(tests/support/crash_worker.py) that SIGKILLs itself right after a chosen step is committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from support.config import SECRET_KEY
from support.system import System

CRASH_WORKER = Path(__file__).resolve().parent / "crash_worker.py"


def worker_env(database_url: str, data_dir: Path, **settings: Any) -> dict[str, str]:
    """The environment of a worker process: fast retries and a short lease."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": SECRET_KEY,
        "worker_lease_seconds": 1,
        "worker_max_idle_seconds": 0.2,
        "retry_base_seconds": 0.05,
        "retry_cap_seconds": 0.5,
        "graph_retry_budget_seconds": 2,
        "graph_backoff_base_seconds": 0.05,
        "revoke_max_attempts": 3,
        "revoke_failed_interval_seconds": 0.5,
    }
    values.update(settings)
    return {**os.environ, **{f"JITADMIN_{k.upper()}": str(v) for k, v in values.items()}}


class WorkerProcess:
    """One worker process on the system's database; its output goes to ``log_path``."""

    def __init__(
        self,
        system: System,
        log_path: Path,
        *,
        crash_after: tuple[str, str] | None = None,
        gated: bool = False,
        **settings: Any,
    ) -> None:
        """``crash_after=(requester, step)``: SIGKILL right after that step is committed.
        ``gated``: load everything, but start working only on :meth:`open_gate`."""
        env = worker_env(system.app.settings.effective_database_url, log_path.parent, **settings)
        self.gate = log_path.with_suffix(".go")
        if crash_after is None and not gated:
            command = [sys.executable, "-m", "jitadmin", "worker"]
        else:
            command = [sys.executable, str(CRASH_WORKER)]
            if crash_after is not None:
                env["JITADMIN_TEST_CRASH_AFTER"] = "|".join(crash_after)
            if gated:
                env["JITADMIN_TEST_START_GATE"] = str(self.gate)
        self.crash_after = crash_after
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def open_gate(self) -> None:
        self.gate.touch()

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_exit(self, timeout: float = 60.0) -> int:
        """Wait for the process to end by itself; its return code."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"worker {self.pid} ({self.crash_after}) still running: {self.tail()}")
            time.sleep(0.02)
        return self.process.returncode

    def wait_killed(self, timeout: float = 60.0) -> None:
        """Wait until the crash worker has SIGKILLed itself at its step."""
        code = self.wait_exit(timeout)
        assert code == -signal.SIGKILL, f"exit {code}, expected SIGKILL: {self.tail()}"
        self.log.close()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=10) == -signal.SIGKILL
        self.log.close()

    def send_sigterm(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM (a graceful stop); its exit code."""
        self.send_sigterm()
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self.log.close()
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()

    def tail(self, lines: int = 30) -> str:
        if not self.log.closed:
            self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
