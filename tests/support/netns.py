"""A network namespace of the test's own, joined to the host by a veth pair, and a Samba DC
inside it (scripts/samba-dc.sh with an address and directory of its own). The DC listens only
on the namespace's own loopback: programs in the namespace (the agent) reach it, nothing on the
host does. Needs root; everything made is removed again."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.agents import REPO

DC_IP = "127.0.0.91"  # the namespace's loopback, not the host's


@dataclass(frozen=True)
class Netns:
    name: str
    host_ip: str  # the host's end of the veth pair
    ns_ip: str  # the namespace's end

    def command(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def netns() -> Iterator[Netns]:
    n = os.getpid() % 200 + 20
    name, host_if, ns_if = f"jitagent{n}", f"jaa{n}", f"jab{n}"
    space = Netns(name, f"10.231.{n}.1", f"10.231.{n}.2")
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", name)
        _ip("addr", "add", f"{space.host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{space.ns_ip}/30", "dev", ns_if)
        _ip("netns", "exec", name, "ip", "link", "set", ns_if, "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield space
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)


@contextmanager
def dc_in(space: Netns, directory: Path) -> Iterator[Path]:
    """A new domain (ONPREM.LOCAL) provisioned inside ``space``; yields its env file."""
    env_file = directory / "netns-dc.env"
    env = {
        **os.environ, "SAMBA_DC_IP": DC_IP, "SAMBA_DC_DIR": f"/var/tmp/jitadmin-{space.name}-dc",  # noqa: S108 - the script's own place
        "SAMBA_DC_ENV_FILE": str(env_file), "SAMBA_DC_REALM": "ONPREM.LOCAL",
        "SAMBA_DC_DOMAIN": "ONPREM", "SAMBA_DC_TIMEOUT": "180",
    }  # fmt: skip
    script = str(REPO / "scripts" / "samba-dc.sh")
    try:
        started = subprocess.run(
            space.command(script, "start"), env=env, capture_output=True, text=True,
            timeout=600, check=False,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr[-2000:]
        yield env_file
    finally:
        subprocess.run(
            space.command(script, "purge"), env=env, capture_output=True, timeout=120, check=False
        )
