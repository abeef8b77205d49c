"""``jitadmin agent run``: the agent's loop. Outbound only: it long-polls the server for a job,
runs it against the DC, and reports each step and the result on the same signed channel.
What cannot be sent waits in the spool; while the server is unreachable the fail-safe
revokes grants past their end plus the grace period, and reports them once it is back."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jitadmin
from jitadmin.agent import dc
from jitadmin.agent.client import ServerClient, ServerRefusedError, ServerUnreachableError
from jitadmin.agent.config import AgentConfig
from jitadmin.agent.failsafe import FailsafeState
from jitadmin.agent.spool import Spool
from jitadmin.core.agent_protocol import JOB_REVOKE
from jitadmin.core.errors import AdapterError, TransientError
from jitadmin.ports import ProgressRecorder, RevokeSpec

log = logging.getLogger("jitadmin.agent")
FAILSAFE_PATH = "/agent/failsafe"
MAX_BACKOFF_S = 30.0


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if isinstance(v, str | int | bool | list | None)}


def _collect(steps: list[str]) -> ProgressRecorder:
    def record(step: str, _data: dict[str, Any]) -> None:
        steps.append(step)

    return record


class AgentRunner:
    def __init__(
        self, config: AgentConfig, config_file: Path, stop: threading.Event | None = None
    ) -> None:
        self.config = config
        self.stop = stop or threading.Event()
        state_dir = config.state_path(config_file)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.spool = Spool(state_dir)
        self.failsafe = FailsafeState(state_dir)
        self.client = ServerClient(
            config.server, config.private_key, config.agent_id, config.server_ca_pem
        )
        self._greeted = False

    # -- sending ---------------------------------------------------------------------------

    def _send(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.client.post(path, body)
        if path == FAILSAFE_PATH:
            self.failsafe.reported(str(body["grant_id"]))
        return answer

    def deliver(self, path: str, body: dict[str, Any]) -> None:
        """Send now, or keep it in the spool (behind anything already waiting there)."""
        if len(self.spool):
            self.spool.put(path, body)
            return
        try:
            self._send(path, body)
        except ServerUnreachableError as error:
            log.warning("server unreachable (%s); %s kept in the spool", error, path)
            self.spool.put(path, body)

    # -- the loop ----------------------------------------------------------------------------

    def hello(self) -> None:
        tenant = domain = None
        try:
            tenant, domain = dc.provider(self.config.dc).domain_names()
        except AdapterError as error:
            log.warning("the DC did not answer (%s); the server is told later", error)
        body = {"version": jitadmin.__version__, "tenant_id": tenant, "domain": domain}
        answer = self._send("/agent/hello", body)
        self.failsafe.update(answer.get("grants") or [], datetime.now(UTC))
        self._greeted = tenant is not None

    def run_once(self, wait_s: float | None = None) -> bool:
        """One round: the spool, then one long poll and its job. True when a job ran."""
        self.spool.flush(self._send)
        if not self._greeted:
            self.hello()
        answer = self.client.lease(self.config.poll_seconds if wait_s is None else wait_s)
        self.failsafe.update(answer.get("grants") or [], datetime.now(UTC))
        job = answer.get("job")
        if not job:
            return False
        self.execute(job)
        return True

    def execute(self, job: dict[str, Any]) -> None:
        steps = f"/agent/jobs/{job['id']}/steps"
        log.info("job %s: %s of grant %s", job["id"], job["kind"], job["grant_id"])

        def record(step: str, data: dict[str, Any]) -> None:
            body = {"step": step, "data": _jsonable(data)}
            if job["kind"] == JOB_REVOKE:
                self.deliver(steps, body)  # taking access away may go on offline
                return
            # Giving access goes on only while the server says this agent holds the job:
            # one whose lease went to another agent, or that cannot tell, stops here.
            try:
                accepted = self._send(steps, body).get("accepted")
            except ServerUnreachableError as error:
                raise TransientError(f"server unreachable mid-job ({error}); stopped") from None
            if not accepted:
                raise TransientError(f"job {job['id']} is no longer this agent's; stopped")

        result = dc.run_job(self.config.dc, job, record)
        if not result["ok"]:
            log.warning("job %s failed: %s", job["id"], result["error"]["message"])
        self.deliver(f"/agent/jobs/{job['id']}/result", result)

    def run(self) -> None:
        log.info("agent %s (%s) started for %s", self.config.agent_id, self.config.name,
                 self.config.server)  # fmt: skip
        backoff = 1.0
        while not self.stop.is_set():
            try:
                self.run_once()
                backoff = 1.0
                continue
            except ServerUnreachableError as error:
                log.warning("server unreachable: %s", error)
                self.check_failsafe()
            except ServerRefusedError as refused:
                # 401: revoked, or this machine's clock is off by minutes. Nothing is lost.
                log.error("server refused the agent: %s", refused)
                backoff = MAX_BACKOFF_S if refused.status == 401 else backoff
            self.stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self.client.close()

    def check_failsafe(self) -> list[str]:
        """Revoke, here, each grant past its end plus the grace that the server could not."""
        now = datetime.now(UTC)
        done = []
        for grant in self.failsafe.overdue(now, self.config.failsafe_grace_seconds):
            steps: list[str] = []
            account = {"object_guid": grant.object_guid} if grant.object_guid else {}
            try:
                dc.provider(self.config.dc).revoke(
                    RevokeSpec(grant.grant_id, grant.requester, grant.username, account),
                    _collect(steps),
                )
            except Exception:  # tried again on the next round
                log.exception("fail-safe revoke of grant %s failed; retrying", grant.grant_id)
                continue
            log.warning("fail-safe: grant %s revoked locally (server unreachable past its end)",
                        grant.grant_id)  # fmt: skip
            self.failsafe.mark_revoked(grant.grant_id)
            self.spool.put(
                FAILSAFE_PATH,
                {"grant_id": grant.grant_id, "steps": steps, "revoked_at": now.isoformat()},
            )
            done.append(grant.grant_id)
        return done
