"""Email channels: notifications reach a real SMTP server on loopback through the worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jitadmin.adapters.notify.smtp import SmtpMailer
from jitadmin.core.errors import MisconfiguredError, TransientError
from jitadmin.emulators.seed import CUSTOMERS

from support.smtp_server import SmtpServer, smtp_server
from support.system import System, start_system, stop_system
from support.waiting import wait_for

PEDRO = CUSTOMERS[0]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as running:
        yield running


@pytest.fixture
def mail_system(tmp_path: Path, database_url: str, smtp: SmtpServer) -> Iterator[System]:
    running = start_system(
        tmp_path, database_url=database_url, smtp_host="127.0.0.1", smtp_port=smtp.port,
        smtp_starttls=False, smtp_from="jitadmin@msp.example",
        public_url="https://jitadmin.msp.example",
    )  # fmt: skip
    yield running
    stop_system(running)


def test_an_email_channel_gets_each_event_once(mail_system: System, smtp: SmtpServer) -> None:
    system = mail_system
    with system.client("admin") as api:
        made = api.post(
            "/notification-channels",
            json={"kind": "email", "to": ["security@msp.example", "noc@msp.example"],
                  "events": ["grant.active", "grant.revoked"]},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        assert made.json()["to"] == ["security@msp.example", "noc@msp.example"]
        tested = api.post(f"/notification-channels/{made.json()['id']}/test").json()
    assert tested == {"ok": True, "message": "delivered"}
    with system.client() as api:
        grant = api.post(
            "/grants",
            json={"customer": "pedroaviary", "identity_provider": "m365",
                  "ticket_id": PEDRO.open_ticket_ids[0], "duration_minutes": 30,
                  "reason": "Email drill"},
        ).json()  # fmt: skip
    system.wait_state(grant["id"], "active")
    with system.client() as api:
        api.post(f"/grants/{grant['id']}/revoke").raise_for_status()
    system.wait_state(grant["id"], "revoked")
    wait_for(lambda: len(smtp.mails) >= 3, what="the test mail and two event mails")
    test_mail, *event_mails = smtp.mails
    assert "Test notification" in str(test_mail.message["Subject"])
    subjects = [str(m.message["Subject"]) for m in event_mails]
    assert len(subjects) == 2
    assert "Admin access granted" in subjects[0] and "Admin access revoked" in subjects[1]
    for mail in event_mails:
        assert mail.sender == "jitadmin@msp.example"
        assert sorted(mail.recipients) == ["noc@msp.example", "security@msp.example"]
        text = mail.message.get_payload(decode=True).decode()  # type: ignore[union-attr]
        assert f"https://jitadmin.msp.example/grants/{grant['id']}" in text
        assert grant["password"] not in text


def test_starttls_required_but_not_offered_is_a_configuration_error(smtp: SmtpServer) -> None:
    mailer = SmtpMailer("127.0.0.1", smtp.port, "jitadmin@msp.example", starttls=True)
    with pytest.raises(MisconfiguredError, match="STARTTLS"):
        mailer.send(["a@msp.example"], "s", "t")
    assert smtp.mails == []


def test_an_unreachable_server_is_transient() -> None:
    mailer = SmtpMailer("127.0.0.1", 9, "jitadmin@msp.example", starttls=False)
    with pytest.raises(TransientError):
        mailer.send(["a@msp.example"], "s", "t")
