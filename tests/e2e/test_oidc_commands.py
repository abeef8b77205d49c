"""`jitadmin demo` and `jitadmin serve` read the JITADMIN_OIDC_* settings: the sign-in page
offers the provider's button, the commands print the redirect URI to register, and a sign-in
through the real OpenID Provider (npm's oidc-provider) ends signed in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from jitadmin.emulators.runner import free_port

from support.config import SECRET_KEY
from support.oidc import (
    CLIENT_ID,
    CLIENT_SECRET,
    DISPLAY_NAME,
    PASSWORD,
    TECHNICIAN,
    OpenIdProvider,
    follow_to_provider_login,
)
from support.system import demo_ready
from support.waiting import wait_for


def oidc_env(provider: OpenIdProvider, secret_file: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JITADMIN_")}
    secret_file.write_text(CLIENT_SECRET)
    return env | {
        "JITADMIN_OIDC_ISSUER": provider.issuer,
        "JITADMIN_OIDC_CLIENT_ID": CLIENT_ID,
        "JITADMIN_OIDC_CLIENT_SECRET_FILE": str(secret_file),
        "JITADMIN_OIDC_ROLES_CLAIM": "groups",
        "JITADMIN_OIDC_ROLE_MAP": '{"jit-admins": "admin", "jit-technicians": "technician"}',
        "JITADMIN_OIDC_DISPLAY_NAME": DISPLAY_NAME,
        **more,
    }


def signs_in_through_the_provider(url: str) -> None:
    with httpx.Client(timeout=30) as browser:
        page = browser.get(f"{url}/signin")
        assert f"Sign in with {DISPLAY_NAME}" in page.text
        back = follow_to_provider_login(browser, f"{url}/auth/oidc/start", TECHNICIAN, PASSWORD)
        done = browser.get(back)
        assert done.status_code == 200, done.text
        assert browser.get(f"{url}/").status_code == 200
        assert "Request admin access" in browser.get(f"{url}/").text


def run(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jitadmin", *command], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def stop(process: subprocess.Popen[str], provider: OpenIdProvider) -> str:
    """Stop the command as Ctrl-C would, then the provider; what the command printed."""
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    provider.stop()
    return output


def test_demo_reads_the_oidc_settings(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    provider = OpenIdProvider(tmp_path, redirect_uris=[f"{url}/auth/oidc/callback"])
    provider.start()
    data = tmp_path / "demo"
    process = run(["demo", "--port", str(port), "--data-dir", str(data)],
                  oidc_env(provider, tmp_path / "client-secret"))  # fmt: skip
    try:
        wait_for(lambda: demo_ready(url, data / "demo.json"), timeout=60, what="the demo")
        signs_in_through_the_provider(url)
    finally:
        output = stop(process, provider)
    assert f"single sign-on: 'Sign in with {DISPLAY_NAME}' ({provider.issuer}; " in output
    assert f"redirect URI {url}/auth/oidc/callback" in output


def test_serve_reads_the_oidc_settings_and_local_signin_off(tmp_path: Path) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    provider = OpenIdProvider(tmp_path, redirect_uris=[f"{public}/auth/oidc/callback"])
    provider.start()
    env = oidc_env(
        provider, tmp_path / "client-secret", JITADMIN_SECRET_KEY=SECRET_KEY,
        JITADMIN_DATA_DIR=str(tmp_path / "data"), JITADMIN_PUBLIC_URL=public,
        JITADMIN_LOCAL_SIGNIN="false",
    )  # fmt: skip
    process = run(["serve", "--port", str(port), "--no-worker"], env)
    try:
        wait_for(lambda: _answers(public), timeout=60, what="jitadmin serve")
        page = httpx.get(f"{public}/signin", timeout=30).text
        assert 'name="password"' not in page  # no local form
        signs_in_through_the_provider(public)
    finally:
        output = stop(process, provider)
    assert f"redirect URI {public}/auth/oidc/callback" in output


def test_bad_oidc_settings_stop_the_start_naming_them(tmp_path: Path) -> None:
    provider = OpenIdProvider(tmp_path)
    env = oidc_env(provider, tmp_path / "client-secret", JITADMIN_SECRET_KEY=SECRET_KEY,
                   JITADMIN_DATA_DIR=str(tmp_path / "data"),
                   JITADMIN_OIDC_ROLE_MAP='{"jit-admins": "root"}')  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "jitadmin", "serve"], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "JITADMIN_OIDC_ROLE_MAP: 'jit-admins' maps to unknown role 'root'" in done.stderr
    assert not (tmp_path / "data").exists()  # stopped before anything was made
    env.pop("JITADMIN_OIDC_CLIENT_SECRET_FILE")
    done = subprocess.run(
        [sys.executable, "-m", "jitadmin", "serve"], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert "JITADMIN_OIDC_CLIENT_SECRET (or _FILE) must be set too" in done.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
