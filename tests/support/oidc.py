"""A real OpenID Provider for the OIDC sign-in tests: npm's certified ``oidc-provider`` run by
tests/oidc_provider/provider.mjs on its own loopback address, and a jitadmin set up for it.

The provider listens on 127.0.0.90, jitadmin on 127.0.0.1: two sites, so the provider's
redirect back is a cross-site navigation in Chromium, as it is in production.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from jitadmin.ports import Clock

from support.system import System, start_system

PROVIDER_DIR = Path(__file__).resolve().parent.parent / "oidc_provider"
HOST = "127.0.0.90"
START_TIMEOUT_S = 120
CLIENT_ID = "jitadmin"
CLIENT_SECRET = "test-client-secret-0123456789abcdef"
OTHER_CLIENT_ID = "another-app"
OTHER_CLIENT_SECRET = "another-client-secret-0123456789ab"
OTHER_REDIRECT = "http://127.0.0.91:9/callback"  # never reached: the tests stop at its URL
PASSWORD = "provider-password-1"
ROLE_MAP = {"jit-admins": "admin", "jit-technicians": "technician"}
DISPLAY_NAME = "Test IdP"


def account(name: str, groups: list[str], amr: list[str] | None = None) -> dict[str, Any]:
    return {
        "password": PASSWORD,
        "amr": ["pwd", "mfa"] if amr is None else amr,
        "claims": {"preferred_username": name, "email": name, "name": name.partition("@")[0],
                   "groups": groups},
    }  # fmt: skip


# The accounts whose claims differ, as the issue asks.
ADMIN = "ada@msp.example"
TECHNICIAN = "tom@msp.example"
NO_GROUP = "nina@msp.example"
NO_MFA = "sam@msp.example"
ACCOUNTS = {
    ADMIN: account(ADMIN, ["jit-admins", "everyone"]),
    TECHNICIAN: account(TECHNICIAN, ["jit-technicians"]),
    NO_GROUP: account(NO_GROUP, ["everyone"]),
    NO_MFA: account(NO_MFA, ["jit-admins"], amr=["pwd"]),
}


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class OpenIdProvider:
    workdir: Path
    port: int = field(default_factory=lambda: free_port(HOST))
    process: subprocess.Popen[str] | None = None
    kid: str = ""
    accounts: dict[str, Any] = field(default_factory=lambda: json.loads(json.dumps(ACCOUNTS)))
    redirect_uris: list[str] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "provider.json"

    def write_config(self) -> None:
        clients = [
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
             "redirect_uris": self.redirect_uris},
            {"client_id": OTHER_CLIENT_ID, "client_secret": OTHER_CLIENT_SECRET,
             "redirect_uris": [OTHER_REDIRECT]},
        ]  # fmt: skip
        config = {"host": HOST, "port": self.port, "issuer": self.issuer,
                  "clients": clients, "accounts": self.accounts}  # fmt: skip
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config))
        tmp.replace(self.config_path)  # the provider never reads half a file

    def set_groups(self, login: str, groups: list[str]) -> None:
        """Change an account's groups; the provider reads them at the next sign-in."""
        self.accounts[login]["claims"]["groups"] = groups
        self.write_config()

    def start(self) -> None:
        node = shutil.which("node")
        if node is None or not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            # Never a skip: `make test` installs it (make node-packages: npm ci).
            pytest.fail("the test OpenID Provider is not installed: run `make node-packages`")
        self.write_config()
        self.process = subprocess.Popen(
            [node, str(PROVIDER_DIR / "provider.mjs"), str(self.config_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROVIDER_DIR,
            env={**os.environ, "NODE_ENV": "test"},
        )  # fmt: skip
        assert self.process.stdout is not None
        # The script prints "ready <kid>" once it listens; a crash closes stdout instead.
        # Generous: node loads oidc-provider and makes an RSA key, slow on a loaded machine.
        readable, _, _ = select.select([self.process.stdout], [], [], START_TIMEOUT_S)
        line = self.process.stdout.readline() if readable else ""
        if not line.startswith("ready "):
            crashed = self.process.poll() is not None
            errors = self.process.stderr.read() if crashed and self.process.stderr else ""
            self.stop()
            why = "it exited" if crashed else f"no 'ready' within {START_TIMEOUT_S} s"
            pytest.fail(
                f"the test OpenID Provider did not start ({why}): {line!r} {errors[-2000:]}"
            )
        self.kid = line.split()[1]

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self.process = None

    def rotate_key(self) -> str:
        """Restart on the same address with a new signing key (the old one is gone)."""
        old = self.kid
        self.stop()
        self.start()
        assert self.kid != old
        return self.kid


def oidc_settings(provider: OpenIdProvider, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "oidc_issuer": provider.issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": SecretStr(CLIENT_SECRET),
        "oidc_roles_claim": "groups",
        "oidc_role_map": ROLE_MAP,
        "oidc_display_name": DISPLAY_NAME,
    }
    values.update(overrides)
    return values


def start_oidc_system(
    tmp_path: Path, provider: OpenIdProvider, *, clock: Clock | None = None, **overrides: Any
) -> System:
    """jitadmin for ``provider``, then the provider with jitadmin's callback registered."""
    system = start_system(tmp_path, clock=clock, **oidc_settings(provider, **overrides))
    provider.redirect_uris = [f"{system.url}/auth/oidc/callback"]
    provider.start()
    return system


def follow_to_provider_login(http: httpx.Client, url: str, login: str, password: str) -> str:
    """From ``url`` (jitadmin's /auth/oidc/start or an authorization URL) through the
    provider's login, as a browser would; returns the URL the provider sends the browser back
    to (the callback with ``code`` and ``state``), without opening it."""
    response = http.get(url)
    while response.is_redirect and "/interaction/" not in response.headers["location"]:
        response = http.get(urljoin(str(response.url), response.headers["location"]))
    interaction = urljoin(str(response.url), response.headers["location"])
    response = http.post(f"{interaction}/login", data={"login": login, "password": password})
    while response.is_redirect:
        target = urljoin(str(response.url), response.headers["location"])
        if "code=" in urlsplit(target).query or "error=" in urlsplit(target).query:
            return target
        response = http.get(target)
    raise AssertionError(f"the provider did not send the browser back: {response.text[:300]}")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
