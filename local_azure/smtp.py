"""A mail catcher: an SMTP server (aiosmtpd) that keeps every message it receives.

Messages are kept in memory, parsed as `email.message.EmailMessage`, and, when a folder is given, as
`.eml` files in it (any mail client opens those). It accepts every sender and recipient: the app's
notifications are what the tests and the demo read back.

    with MailCatcher(Path(".local/mail")) as mail:
        ...  # GATES_SMTP_HOST=127.0.0.1, GATES_SMTP_PORT=mail.port
        message = mail.wait_for(lambda m: "approve" in str(m["Subject"]).lower(), timeout=10)

`python -m local_azure.smtp --port 2525 --mail-dir .local/mail` runs it in the foreground.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from local_azure.lifecycle import Startable, report_until_interrupted

START_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class CaughtMail:
    envelope_from: str
    envelope_to: tuple[str, ...]
    message: EmailMessage
    path: Path | None


def links_in(message: EmailMessage, base_url: str) -> list[str]:
    """The links to `base_url` in a message's plain-text part, decoded (no quoted-printable soft breaks),
    in order, each once."""
    part = message.get_body(preferencelist=("plain",))
    text = part.get_content() if part is not None else ""
    found = re.findall(rf"{re.escape(base_url.rstrip('/'))}/\S+", str(text))
    return list(dict.fromkeys(link.rstrip(".,;)") for link in found))


class _Keeper:
    """aiosmtpd's handler: runs on the server's event loop thread."""

    def __init__(self, on_message: Callable[[bytes, str, tuple[str, ...]], None]) -> None:
        self._on_message = on_message

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        data = content if isinstance(content, bytes) else content.encode("utf-8", "surrogateescape")
        self._on_message(data, envelope.mail_from or "", tuple(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class _AnyPortController(Controller):
    """aiosmtpd's Controller, but `port=0` works: it learns the bound port before its self-test connects."""

    def _trigger_server(self) -> None:
        sockets = getattr(self.server, "sockets", None)  # an asyncio.Server; typed as AbstractServer
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        super()._trigger_server()


class MailCatcher(Startable):
    def __init__(self, mail_dir: Path | None = None, port: int = 0, host: str = "127.0.0.1") -> None:
        self.mail_dir = Path(mail_dir) if mail_dir is not None else None
        self.host = host
        self._requested_port = port
        self._controller: _AnyPortController | None = None
        self._caught: list[CaughtMail] = []
        self._arrived = threading.Condition()
        self._sequence = 0

    # ----- lifecycle ----------------------------------------------------------------------------
    def start(self) -> MailCatcher:
        """Returns once the server answers SMTP."""
        if self._controller is not None:
            raise RuntimeError("the mail catcher is already started")
        if self.mail_dir is not None:
            self.mail_dir.mkdir(parents=True, exist_ok=True)
        controller = _AnyPortController(
            _Keeper(self._keep), hostname=self.host, port=self._requested_port, ready_timeout=START_TIMEOUT_SECONDS,
            enable_SMTPUTF8=True, server_hostname="mail-catcher.local")
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("the mail catcher is not started")
        return int(self._controller.port)

    # ----- what arrived -------------------------------------------------------------------------
    def messages(self) -> list[EmailMessage]:
        with self._arrived:
            return [caught.message for caught in self._caught]

    def caught(self) -> list[CaughtMail]:
        """Messages with their SMTP envelope and the file each was saved to."""
        with self._arrived:
            return list(self._caught)

    def clear(self) -> None:
        """Forget what arrived so far (files on disk stay)."""
        with self._arrived:
            self._caught.clear()

    def wait_for(self, predicate: Callable[[EmailMessage], bool], timeout: float = 10.0) -> EmailMessage:
        """The first message, received so far or within `timeout` seconds, that `predicate` accepts."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for caught in self._caught:
                    if predicate(caught.message):
                        return caught.message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    subjects = [str(caught.message["Subject"]) for caught in self._caught]
                    raise TimeoutError(f"no matching e-mail within {timeout:g} s; received: {subjects}")
                self._arrived.wait(remaining)

    def _keep(self, data: bytes, envelope_from: str, envelope_to: tuple[str, ...]) -> None:
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self._sequence += 1
            path = self._save(data, self._sequence)
            self._caught.append(CaughtMail(envelope_from, envelope_to, message, path))
            self._arrived.notify_all()

    def _save(self, data: bytes, sequence: int) -> Path | None:
        if self.mail_dir is None:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = self.mail_dir / f"{stamp}-{time.time_ns() % 1_000_000_000:09d}-{sequence:04d}.eml"
        path.write_bytes(data)
        return path


def main(argv: list[str] | None = None) -> int:
    from local_azure.processes import exit_on_sigterm

    parser = argparse.ArgumentParser(prog="python -m local_azure.smtp", description="mail catcher (SMTP)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--mail-dir", type=Path, default=Path(".local/mail"))
    args = parser.parse_args(argv)
    exit_on_sigterm()
    with MailCatcher(args.mail_dir, port=args.port, host=args.host) as catcher:
        print(f"mail catcher on smtp://{args.host}:{catcher.port}, saving to {args.mail_dir}/", flush=True)
        report_until_interrupted(
            catcher.caught,
            lambda item: f"mail to {', '.join(item.envelope_to)}: {item.message['Subject']} ({item.path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
