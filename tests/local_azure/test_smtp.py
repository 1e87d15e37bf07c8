"""The mail catcher receives what `smtplib` sends and hands it back parsed, in memory and as .eml files."""

from __future__ import annotations

import email
import email.policy
import os
import smtplib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from local_azure.smtp import MailCatcher, links_in

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[MailCatcher]:
    with MailCatcher(tmp_path / "mail") as running:
        yield running


def compose(subject: str, body: str = "Approve the restart of vm-web-01?",
            to: str = "alice@contoso.test") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "sre-gates@contoso.test"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


def send(catcher: MailCatcher, message: EmailMessage, **kwargs: object) -> None:
    with smtplib.SMTP("127.0.0.1", catcher.port, timeout=10) as client:
        client.send_message(message, **kwargs)  # type: ignore[arg-type]


def test_a_sent_message_is_kept_parsed(catcher: MailCatcher) -> None:
    send(catcher, compose("Consent needed: restart vm-web-01"))
    [received] = catcher.messages()
    assert received["Subject"] == "Consent needed: restart vm-web-01"
    assert received["To"] == "alice@contoso.test"
    assert received.get_content().strip() == "Approve the restart of vm-web-01?"


def test_each_message_is_saved_as_an_eml_file(catcher: MailCatcher, tmp_path: Path) -> None:
    send(catcher, compose("first"))
    send(catcher, compose("second"))
    files = sorted((tmp_path / "mail").glob("*.eml"))
    subjects = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default)["Subject"] for f in files]
    assert subjects == ["first", "second"]


def test_the_envelope_recipients_are_kept_beside_the_headers(catcher: MailCatcher) -> None:
    send(catcher, compose("to two"), to_addrs=["alice@contoso.test", "bob@contoso.test"])
    [caught] = catcher.caught()
    assert caught.envelope_from == "sre-gates@contoso.test"
    assert caught.envelope_to == ("alice@contoso.test", "bob@contoso.test")


def test_non_ascii_text_arrives_intact(catcher: MailCatcher) -> None:
    send(catcher, compose("Zustimmung nötig — vm-web-01", body="Grüße, Ärger, 日本"))
    [received] = catcher.messages()
    assert received["Subject"] == "Zustimmung nötig — vm-web-01"
    assert received.get_content().strip() == "Grüße, Ärger, 日本"


def test_wait_for_returns_a_message_that_arrives_later(catcher: MailCatcher) -> None:
    sender = threading.Thread(target=send, args=(catcher, compose("Credential needed")))
    sender.start()
    try:
        received = catcher.wait_for(lambda m: "Credential" in str(m["Subject"]), timeout=15)
    finally:
        sender.join(timeout=15)
    assert received["Subject"] == "Credential needed"


def test_wait_for_skips_messages_the_predicate_refuses(catcher: MailCatcher) -> None:
    send(catcher, compose("for bob", to="bob@contoso.test"))
    send(catcher, compose("for alice"))
    assert catcher.wait_for(lambda m: m["To"] == "alice@contoso.test", timeout=5)["Subject"] == "for alice"


def test_wait_for_times_out_naming_what_did_arrive(catcher: MailCatcher) -> None:
    send(catcher, compose("something else"))
    with pytest.raises(TimeoutError, match="something else"):
        catcher.wait_for(lambda m: False, timeout=0.2)


def test_clear_forgets_what_arrived(catcher: MailCatcher) -> None:
    send(catcher, compose("old"))
    catcher.clear()
    assert catcher.messages() == []


def test_without_a_folder_nothing_is_written(tmp_path: Path) -> None:
    with MailCatcher(None) as memory_only:
        send(memory_only, compose("kept in memory"))
        assert [c.path for c in memory_only.caught()] == [None]
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_command_gets_an_smtp_error_reply(catcher: MailCatcher) -> None:
    with smtplib.SMTP("127.0.0.1", catcher.port, timeout=10) as client:
        code, _ = client.docmd("FROBNICATE")
    assert code == 500


def test_two_catchers_on_port_zero_listen_on_ports_of_their_own(catcher: MailCatcher) -> None:
    with MailCatcher() as other:
        assert other.port != catcher.port


def test_after_stop_the_port_refuses_connections(tmp_path: Path) -> None:
    catcher = MailCatcher(tmp_path).start()
    port = catcher.port
    catcher.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_the_plugins_mailbox_fixture_starts_each_test_empty(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["local_azure.pytest_plugin"]\n')
    (tmp_path / "test_nested.py").write_text(
        "import smtplib\n"
        "from email.message import EmailMessage\n"
        "def send(port):\n"
        "    m = EmailMessage(); m['From'] = 'a@contoso.test'; m['To'] = 'b@contoso.test'; m['Subject'] = 'hi'\n"
        "    with smtplib.SMTP('127.0.0.1', port, timeout=10) as c: c.send_message(m)\n"
        "def test_first(mailbox):\n"
        "    send(mailbox.port); assert len(mailbox.messages()) == 1\n"
        "def test_second(mailbox, mail_catcher):\n"
        "    assert mailbox is mail_catcher and mailbox.messages() == []\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_links_come_out_whole_though_quoted_printable_breaks_them_in_the_file(catcher: MailCatcher) -> None:
    link = "http://127.0.0.1:7071/api/approvals/" + "r" * 40 + "/consent?token=" + "t" * 120
    message = compose("Consent needed", body=f"Review and decide before 03:30 UTC: {link}\nOpening it changes nothing.")
    message.set_content(message.get_content(), cte="quoted-printable")
    send(catcher, message)
    (caught,) = catcher.caught()
    assert caught.path is not None
    assert link not in caught.path.read_text()  # soft line breaks in the .eml
    assert links_in(caught.message, "http://127.0.0.1:7071") == [link]


def test_only_links_to_the_app_are_picked(catcher: MailCatcher) -> None:
    send(catcher, compose("x", body="see https://learn.microsoft.com/x and http://127.0.0.1:7071/api/runs/r1."))
    (received,) = catcher.messages()
    assert links_in(received, "http://127.0.0.1:7071/") == ["http://127.0.0.1:7071/api/runs/r1"]
