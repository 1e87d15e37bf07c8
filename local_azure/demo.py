"""`python -m local_azure demo`: the product's story on the local stack, end to end, as people live it.

An Azure Monitor alert says vm-web-01 is not responding. The agent's own identity holds only Reader.
The plan "restart the VM" runs in review mode: alice is e-mailed a link, signs in, consents; the agent
reads the VM, tries the restart, meets 403 AuthorizationFailed, asks alice for temporary credentials;
she grants them; the app exchanges her sign-in through MSAL's on-behalf-of flow, restarts the VM in the
ARM stand-in with her token, discards it, and the run ends succeeded. The audit timeline is printed.

The second story: alice asks an agent (the sre-agent application) to scale the worker scale set to 4.
The agent gets its own Entra token (client credentials, app role Gates.Agent), connects to the app's MCP
endpoint with the real `mcp` client and proposes the plan for alice; the policy names her an approver,
so she is asked for consent, signs in and consents; the agent's identity meets 403, she grants her
credentials; the scale set goes to 4 with her token, and the agent reads the outcome through get_run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.message import EmailMessage

from local_azure import scenario
from local_azure.agent import Agent, client_credentials_token
from local_azure.host.signin import sign_in
from local_azure.smtp import MailCatcher
from local_azure.stack import LocalStack

ALICE = "alice@contoso.test"
PASSWORD = "Passw0rd!"
ALICE_OID = "a11ce000-0000-4000-8000-000000000001"
AGENT_APP = ("a9e77000-0000-4000-8000-00000000a6e7", "local-only-sre-agent-secret-not-for-azure")
VMSS_WORKERS = (f"/subscriptions/{scenario.SUBSCRIPTION}/resourceGroups/rg-prod-workers/providers/"
                "Microsoft.Compute/virtualMachineScaleSets/vmss-workers")


def play(stack: LocalStack, say: Callable[[str], None] = print, timeout: float = 90) -> bool:
    host, mail, arm = stack.host, stack.mail, stack.arm
    if host is None or mail is None or arm is None:
        raise RuntimeError("the demo needs the whole stack, host included")
    base = host.base_url
    restarts_before = int(arm.resource(scenario.VM_WEB_01).get("restartCount", 0))
    began = time.perf_counter()

    def step(text: str) -> None:
        say(f"[{time.perf_counter() - began:5.1f}s] {text}")

    alert = scenario.common_alert("vm-not-responding", scenario.VM_WEB_01,
                                  description="VM heartbeat missing for 5 minutes")
    response = scenario.post_alert(base, host.function_key, alert)
    step(f"Azure Monitor posts 'vm-not-responding' for vm-web-01 → {response.status_code} {response.json()['message']}")
    consent_mail = _mail(mail, "Consent needed", timeout)
    link = scenario.link_in(consent_mail)
    run_id = scenario.run_id_of(link)
    step(f"e-mail to {consent_mail['To']}: {consent_mail['Subject']}")
    step(f"  link: {link}")
    alice = sign_in(base, ALICE, PASSWORD)
    step(f"{ALICE} signs in through Entra ID (App Service Authentication)")
    before = scenario.get_run(alice, base, run_id)["state"]
    alice.get(link, timeout=30).raise_for_status()
    after = scenario.get_run(alice, base, run_id)["state"]
    step(f"she opens the link: the page shows the plan; the run is still {after} (was {before}): GET changes nothing")
    decision = scenario.decide(alice, link, "approve")
    step(f"she presses Approve → {decision.status_code}")
    credentials_mail = _mail(mail, "Credentials needed", timeout)
    step(f"the agent's identity met 403 AuthorizationFailed; e-mail: {credentials_mail['Subject']}")
    grant = scenario.decide(alice, scenario.link_in(credentials_mail), "approve")
    step(f"she grants temporary credentials → {grant.status_code}")
    run = scenario.wait_for_run(alice, base, run_id, timeout=timeout)
    restarts_after = int(arm.resource(scenario.VM_WEB_01).get("restartCount", 0))
    restarted_by = [a for a in arm.activity() if a.get("action", "").endswith("restart/action")
                    and a.get("outcome") == "Succeeded"]
    step(f"run {run['state']}; vm-web-01 restarts {restarts_before} → {restarts_after}, "
         f"by {restarted_by[-1]['principalName'] if restarted_by else 'nobody'} (ARM activity log)")
    say("")
    say(scenario.timeline(run))
    ended = _mail(mail, "Run succeeded", timeout) if run["state"] == "succeeded" else None
    if ended is not None:
        say(f"\ne-mail to {ended['To']}: {ended['Subject']}")
    revoked = any(e["event"] == "credential_revoked" for e in run.get("timeline", []))
    return (run["state"] == "succeeded" and restarts_after == restarts_before + 1 and revoked
            and bool(restarted_by) and restarted_by[-1].get("principalId") == ALICE_OID)


def play_agent(stack: LocalStack, say: Callable[[str], None] = print, timeout: float = 90) -> bool:
    """An agent brings its own plan, through MCP, for the person who prompted it."""
    host, mail, arm, entra = stack.host, stack.mail, stack.arm, stack.entra
    if host is None or mail is None or arm is None or entra is None:
        raise RuntimeError("the demo needs the whole stack, host included")
    began = time.perf_counter()

    def step(text: str) -> None:
        say(f"[{time.perf_counter() - began:5.1f}s] {text}")

    before = arm.resource(VMSS_WORKERS)["capacity"]
    token = client_credentials_token(entra.authority, *AGENT_APP, "api://sre-gates/.default")
    step("the agent gets its own Entra token (client credentials, app role Gates.Agent)")
    agent = Agent(host.base_url, token, host.mcp_extension_key)
    step(f"it connects to {host.base_url}/runtime/webhooks/mcp: tools {', '.join(agent.tools())}")
    plan = {"resource_id": VMSS_WORKERS, "rationale": "alice asked: the worker queue is backing up; scale to 4",
            "steps": [{"action": "vmss.read"}, {"action": "vmss.set_capacity", "parameters": {"capacity": 4}}],
            "requester": {"object_id": ALICE_OID, "upn": ALICE}, "reference": "chat with alice",
            "idempotency_key": f"demo-scale-workers-{int(time.time())}"}
    checked = agent.tool("check_plan", plan)
    step(f"check_plan → {checked['decision']}: {checked['reason']}")
    proposed = agent.tool("propose_plan", plan)
    run_id = proposed["run_id"]
    waiting = proposed["waiting_for"]
    step(f"propose_plan → {proposed['status']} run {run_id}; consent asked of {', '.join(waiting['asked_of'])}")
    step(f"  the agent shows alice her link: {waiting['approval_url']}")
    alice = sign_in(host.base_url, ALICE, PASSWORD)
    consent = scenario.decide(alice, waiting["approval_url"], "approve")
    step(f"{ALICE} signs in and consents → {consent.status_code}")

    def asked_for_credentials() -> dict[str, object] | None:
        view = agent.tool("get_run", {"run_id": run_id})
        found = view.get("waiting_for")
        return found if found and found["kind"] == "credentials" else None

    credentials = scenario.wait_until(asked_for_credentials, timeout, "the credential request")
    step("the agent's own identity met 403 AuthorizationFailed; get_run shows the credential request for alice")
    grant = scenario.decide(alice, str(credentials["approval_url"]), "approve")
    step(f"she grants temporary credentials → {grant.status_code}")
    view = scenario.wait_until(lambda: (v := agent.tool("get_run", {"run_id": run_id}))["state"]
                               in scenario.TERMINAL and v, timeout, "the run to end")
    after = arm.resource(VMSS_WORKERS)["capacity"]
    step(f"get_run → {view['state']}: {view['outcome']}")
    for s in view["steps"]:
        step(f"  step {s['index'] + 1} {s['action']}: {s['state']} with the {s['identity']} identity")
    step(f"vmss-workers capacity {before} → {after} (ARM stand-in)")
    say("")
    say(scenario.timeline(scenario.get_run(alice, host.base_url, run_id)))
    return view["state"] == "succeeded" and after == 4 and view["steps"][-1]["identity"] == "delegated"


def _mail(mail: MailCatcher, subject: str, timeout: float) -> EmailMessage:
    return mail.wait_for(lambda m: subject in str(m["Subject"]), timeout=timeout)
