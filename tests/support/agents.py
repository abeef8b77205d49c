"""The on-prem agent in tests: jitadmin over HTTPS on loopback with a certificate the test
makes, signed agent requests made in-process, and the real agent as a subprocess."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jitadmin.agent.client import ServerClient
from jitadmin.agent.signing import new_private_key, public_key, signature_headers
from jitadmin.emulators.runner import RunningServer, serve_in_thread
from jitadmin.entrypoints.api.app import create_app

from support.system import System

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Tls:
    cert_file: Path
    key_file: Path
    ca_pem: str


def self_signed(directory: Path, host: str = "127.0.0.1") -> Tls:
    """A throwaway certificate for ``host`` (its own CA), made with ``cryptography``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jitadmin test server")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return Tls(cert_file, key_file, pem.decode())


@dataclass
class AgentServer:
    """The system's API served a second time, over HTTPS, for the agents."""

    system: System
    https: RunningServer
    tls: Tls
    ca_file: Path

    @property
    def url(self) -> str:
        return self.https.url

    def stop(self) -> None:
        self.https.stop()

    def idle(self) -> bool:
        """No connection open to the agents' side (every request answered or dropped)."""
        return not self.https.server.server_state.connections

    def restart(self) -> None:
        """The same address again (the agents' configuration names it)."""
        self.https = serve_in_thread(
            create_app(self.system.app), host=self.https.host, port=self.https.port,
            ssl_certfile=str(self.tls.cert_file), ssl_keyfile=str(self.tls.key_file),
        )  # fmt: skip

    def enrollment_code(self, slug: str = "pedroaviary") -> str:
        with self.system.client("admin") as admin:
            made = admin.post(f"/customers/{slug}/agents/enrollments")
        assert made.status_code == 201, made.text
        code: str = made.json()["code"]
        return code

    def agents(self, slug: str = "pedroaviary") -> list[dict[str, Any]]:
        with self.system.client("admin") as admin:
            listed = admin.get(f"/customers/{slug}/agents")
        assert listed.status_code == 200, listed.text
        items: list[dict[str, Any]] = listed.json()["items"]
        return items

    def enroll(self, slug: str = "pedroaviary", **body: Any) -> InProcessAgent:
        """An agent enrolled from this process (no DC needed): for the protocol's tests."""
        private = new_private_key()
        code = self.enrollment_code(slug)
        client = ServerClient(self.url, private, None, self.tls.ca_pem)
        try:
            registered = client.post(
                "/agent/enroll",
                {"code": code, "name": body.pop("name", "test agent"),
                 "public_key": public_key(private), "version": "test",
                 "tenant_id": body.pop("tenant_id", None), "domain": "test.local", **body},
            )  # fmt: skip
        finally:
            client.close()
        return InProcessAgent(self, registered["agent_id"], private)


def start_agent_server(system: System, directory: Path, host: str = "127.0.0.1") -> AgentServer:
    tls = self_signed(directory, host)
    https = serve_in_thread(
        create_app(system.app), host=host, ssl_certfile=str(tls.cert_file),
        ssl_keyfile=str(tls.key_file),
    )  # fmt: skip
    ca_file = directory / "server-ca.pem"
    ca_file.write_text(tls.ca_pem)
    return AgentServer(system, https, tls, ca_file)


@dataclass
class InProcessAgent:
    server: AgentServer
    agent_id: str
    private_key: str

    def client(self) -> ServerClient:
        tls = self.server.tls
        return ServerClient(self.server.url, self.private_key, self.agent_id, tls.ca_pem)

    def raw(
        self, path: str, body: dict[str, Any] | None = None, *, key: str | None = None,
        timestamp: int | None = None, headers: dict[str, str] | None = None,
        sent_body: bytes | None = None,
    ) -> httpx.Response:  # fmt: skip
        """A signed POST (timestamped by the server's clock, which tests may move), with any
        part swapped after signing (another key, other headers, another body)."""
        data = json.dumps(body or {}).encode()
        stamp = int(self.server.system.app.ctx.clock.now().timestamp())
        signed = signature_headers(
            key or self.private_key, self.agent_id, "POST", path, data,
            timestamp=stamp if timestamp is None else timestamp,
        )  # fmt: skip
        signed.update(headers or {})
        with httpx.Client(verify=ca_context(self.server.tls.ca_pem), timeout=30) as http:
            return http.post(
                f"{self.server.url}{path}", content=data if sent_body is None else sent_body,
                headers={**signed, "Content-Type": "application/json"},
            )  # fmt: skip


def ca_context(pem: str) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=pem)


# -- the real agent, as a subprocess ----------------------------------------------------------


def agent_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JITADMIN_")}
    env.update(extra)
    return env


def jitadmin_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "jitadmin", *args]


def enroll_agent(
    server: AgentServer, config: Path, *, dc_url: str, bind_user: str, password_file: Path,
    ca_pem_file: Path, name: str, slug: str = "pedroaviary", grace_s: float = 300.0,
    poll_s: float = 2.0, netns: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    code = server.enrollment_code(slug)
    command = jitadmin_command(
        "agent", "enroll", "--server", server.url, "--code", code, "--config", str(config),
        "--dc-url", dc_url, "--bind-user", bind_user, "--bind-password-file",
        str(password_file), "--ca-pem-file", str(ca_pem_file), "--server-ca-file",
        str(server.ca_file), "--name", name, "--failsafe-grace-seconds", str(grace_s),
        "--poll-seconds", str(poll_s),
    )  # fmt: skip
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    done = subprocess.run(
        command, capture_output=True, text=True, env=agent_env(), timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    loaded: dict[str, Any] = json.loads(config.read_text())
    return loaded


def start_agent(config: Path, log_file: Path, netns: str | None = None) -> subprocess.Popen[bytes]:
    command = jitadmin_command("agent", "run", "--config", str(config))
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    with log_file.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=agent_env())
