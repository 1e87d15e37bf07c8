"""What a test does on the local stack: raise an alert, find its run, answer its e-mails."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from typing import Any

import requests

from local_azure import scenario
from tests.e2e.conftest import App

AGENT = "a9e77000-0000-4000-8000-0000000000aa"
ALICE = "alice@contoso.test"
ALICE_OID = "a11ce000-0000-4000-8000-000000000001"
VM = scenario.VM_WEB_01
TIMEOUT = 60.0


class Journey:
    def __init__(self, app: App, reader: requests.Session) -> None:
        self.app = app
        self.reader = reader
        self.run_id = ""

    def raise_alert(self, rule: str, resource: str = VM, description: str = "") -> str:
        since = dt.datetime.now(dt.UTC).isoformat()
        response = scenario.post_alert(self.app.base_url, self.app.function_key,
                                       scenario.common_alert(rule, resource, description=description))
        assert response.status_code == 202, response.text

        def created() -> dict[str, Any] | None:
            listed = self.reader.get(f"{self.app.base_url}/api/runs", headers={"Accept": "application/json"},
                                     timeout=30).json()["runs"]
            return next((r for r in listed if r["alert_rule"] == rule and r["created_at"] > since), None)

        self.run_id = scenario.wait_until(created, TIMEOUT, f"a run for {rule}")["run_id"]
        return self.run_id

    def mail(self, subject: str) -> EmailMessage:
        mail = self.app.stack.mail
        assert mail is not None
        return mail.wait_for(lambda m: subject in str(m["Subject"]) and self.run_id in scenario.body_text(m),
                             timeout=TIMEOUT)

    def answer(self, subject: str, decision: str, session: requests.Session) -> None:
        response = scenario.decide(session, scenario.link_in(self.mail(subject)), decision)
        assert response.status_code == 200, response.text

    def run(self, states: set[str] | None = None) -> dict[str, Any]:
        return scenario.wait_for_run(self.reader, self.app.base_url, self.run_id, states, timeout=TIMEOUT)

    def events(self) -> list[str]:
        return [e["event"] for e in self.run()["timeline"]]

    def restarts(self) -> int:
        arm = self.app.stack.arm
        return int(arm.resource(VM)["restartCount"])

    def writes(self) -> list[tuple[str, str]]:
        """Who did which write to the VM, as the ARM stand-in's activity log says (successful ones)."""
        arm = self.app.stack.arm
        return [(a["action"].rsplit("/", 2)[-2], a["principalId"]) for a in arm.activity()
                if a.get("outcome") == "Succeeded"]
