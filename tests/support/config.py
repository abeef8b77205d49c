"""The settings every test builds: fast retries, a known secret key, loopback allowed out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from jitadmin.core.egress import EgressPolicy
from jitadmin.settings import Settings

SECRET_KEY = "test-secret-key-" + "x" * 32
METRICS_TOKEN = "test-metrics-token-" + "m" * 16
REPO = Path(__file__).resolve().parents[2]
# The emulators, the Samba DC and every test server listen on loopback, which the egress policy
# refuses unless listed: every Settings the tests build (in-process, or in a worker or CLI
# subprocess inheriting this environment) lists it. Attack tests pass egress_allow=[] instead.
TEST_EGRESS_ALLOW = ["127.0.0.0/8", "::1", "localhost"]
os.environ.setdefault("JITADMIN_EGRESS_ALLOW", ",".join(TEST_EGRESS_ALLOW))
# The same policy for adapters a test builds itself.
TEST_EGRESS = EgressPolicy.parse(TEST_EGRESS_ALLOW)


def fast_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": f"sqlite:///{tmp_path / 'jitadmin.db'}",
        "secret_key": SecretStr(SECRET_KEY),
        "metrics_token": SecretStr(METRICS_TOKEN),
        "worker_lease_seconds": 5.0,
        "worker_max_idle_seconds": 0.5,
        "retry_base_seconds": 0.05,
        "retry_cap_seconds": 0.5,
        "graph_retry_budget_seconds": 2.0,
        "graph_backoff_base_seconds": 0.05,
        "graph_new_assignment_wait_seconds": 1.0,
        "revoke_max_attempts": 3,
        "revoke_failed_interval_seconds": 0.5,
        "provision_max_attempts": 3,
        "egress_allow": TEST_EGRESS_ALLOW,
        # Tests sign admins in with a password alone; the second factor's tests turn it on.
        "totp_required_roles": "",
    }
    values.update(overrides)
    return Settings(**values)
