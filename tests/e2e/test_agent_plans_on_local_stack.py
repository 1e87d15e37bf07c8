"""Plans an agent proposes, on the local runtime: the sre-agent application gets its own token from the
Entra stand-in (client credentials, app role Gates.Agent), proposes through the real `mcp` client
against the host's MCP endpoint or through plain HTTP, people decide on the pages, ARM acts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local_azure import scenario
from local_azure.agent import Agent, client_credentials_token
from local_azure.stack import LocalStack
from tests.e2e.conftest import App, start_app
from tests.e2e.journeys import AGENT, ALICE, ALICE_OID, TIMEOUT, VM

pytestmark = pytest.mark.e2e
MCP_KEY = "e2e-mcp-extension-key"
VMSS = (f"/subscriptions/{scenario.SUBSCRIPTION}/resourceGroups/rg-prod-workers/providers/"
        "Microsoft.Compute/virtualMachineScaleSets/vmss-workers")
AGENT_APP = ("a9e77000-0000-4000-8000-00000000a6e7", "local-only-sre-agent-secret-not-for-azure")
GATES_APP = ("5e1f0a4b-0000-4000-8000-0000000a5e00", "local-only-sre-gates-secret-not-for-azure")
BOB = "bob@contoso.test"
BOB_OID = "b0b00000-0000-4000-8000-000000000002"


@pytest.fixture(scope="module")
def app(stand_ins: LocalStack) -> Iterator[App]:
    yield from start_app(stand_ins, GATES_AUTONOMY_CEILING="autonomous", LOCAL_MCP_EXTENSION_KEY=MCP_KEY)


def token(app: App, client: tuple[str, str] = AGENT_APP, scope: str = "api://sre-gates/.default") -> str:
    entra = app.stack.entra
    assert entra is not None
    return client_credentials_token(entra.authority, client[0], client[1], scope)


@pytest.fixture(scope="module")
def agent(app: App) -> Agent:
    return Agent(app.base_url, token(app), MCP_KEY)


@pytest.fixture(scope="module")
def alice(app: App) -> requests.Session:
    return app.session(ALICE)


@pytest.fixture(autouse=True)
def fresh_arm(app: App) -> None:
    assert app.stack.arm is not None
    app.stack.arm.reset()


counter = iter(range(1, 10_000))


def plan(steps: list[dict[str, Any]], resource: str = VMSS, requester: tuple[str, str] | None = (ALICE_OID, ALICE),
         key: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"resource_id": resource, "steps": steps, "rationale": "e2e: the backlog grows",
                                "idempotency_key": key or f"e2e-{next(counter)}", "reference": "INC-e2e"}
    if requester:
        document["requester"] = {"object_id": requester[0], "upn": requester[1]}
    return document


READ = {"review": [{"action": "vmss.read"}], "autonomous": [{"action": "vm.read_instance_view"}]}
WRITE = {"review": [{"action": "vmss.set_capacity", "parameters": {"capacity": 4}}],
         "autonomous": [{"action": "vm.restart"}]}
TARGET = {"review": VMSS, "autonomous": VM}


def run_ids(app: App, person: requests.Session) -> set[str]:
    listed = person.get(f"{app.base_url}/api/runs", params={"limit": "500"}, headers={"Accept": "application/json"},
                        timeout=30).json()["runs"]
    return {r["run_id"] for r in listed}


def decide(session: requests.Session, link: str, decision: str) -> None:
    response = scenario.decide(session, link, decision)
    assert response.status_code == 200, response.text


def wait(agent: Agent, run_id: str, states: set[str]) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        view = agent.tool("get_run", {"run_id": run_id})
        return view if view["state"] in states else None
    return scenario.wait_until(reached, TIMEOUT, f"run {run_id} in {sorted(states)}")


def waiting(agent: Agent, run_id: str, kind: str) -> dict[str, Any]:
    def asked() -> dict[str, Any] | None:
        view = agent.tool("get_run", {"run_id": run_id})
        found = view.get("waiting_for")
        return found if found and found["kind"] == kind else None
    return scenario.wait_until(asked, TIMEOUT, f"a {kind} request on {run_id}")


ROWS = [
    pytest.param("read", True, "review", False, False, id="read-permitted-review"),
    pytest.param("read", False, "review", False, True, id="read-unpermitted-review"),
    pytest.param("read", True, "autonomous", False, False, id="read-permitted-autonomous"),
    pytest.param("read", False, "autonomous", False, True, id="read-unpermitted-autonomous"),
    pytest.param("write", True, "review", True, False, id="write-permitted-review"),
    pytest.param("write", False, "review", True, True, id="write-unpermitted-review"),
    pytest.param("write", True, "autonomous", False, False, id="write-permitted-autonomous"),
    pytest.param("write", False, "autonomous", False, True, id="write-unpermitted-autonomous"),
]


@pytest.mark.parametrize(("kind", "permitted", "mode", "consent", "credentials"), ROWS)
def test_seed_table_row_for_a_plan_proposed_through_mcp(app: App, agent: Agent, alice: requests.Session, kind: str,
                                                        permitted: bool, mode: str, consent: bool,
                                                        credentials: bool) -> None:
    arm = app.stack.arm
    assert arm is not None
    target = TARGET[mode]
    if kind == "read" and not permitted:
        arm.remove_role_assignments(AGENT)
    if kind == "write" and permitted:
        arm.assign_role(AGENT, "Virtual Machine Contributor", target)
    proposed = agent.tool("propose_plan", plan((READ if kind == "read" else WRITE)[mode], target))
    assert proposed["status"] == 202, proposed
    run_id = proposed["run_id"]
    if consent:
        assert proposed["waiting_for"]["asked_of"] == [ALICE]
        decide(alice, proposed["waiting_for"]["approval_url"], "approve")
    if credentials:
        decide(alice, waiting(agent, run_id, "credentials")["approval_url"], "approve")
    view = wait(agent, run_id, set(scenario.TERMINAL))
    assert view["state"] == "succeeded", view
    kinds = [r["kind"] for r in view["requests"]]
    assert ("consent" in kinds) is consent
    assert ("credentials" in kinds) is credentials
    assert view["steps"][-1]["identity"] == ("delegated" if credentials else "agent")
    writes = [a for a in arm.activity() if a.get("outcome") == "Succeeded"]
    if kind == "write":
        assert [w["principalId"] for w in writes] == [ALICE_OID if credentials else AGENT]
    else:
        assert writes == []
        assert view["steps"][0]["result"]


def test_consent_denied_reaches_the_agent_with_its_reason_and_nothing_is_done(app: App, agent: Agent,
                                                                             alice: requests.Session) -> None:
    proposed = agent.tool("propose_plan", plan(WRITE["review"]))
    link = proposed["waiting_for"]["approval_url"]
    fields = scenario.form_fields(alice, link)
    response = alice.post(link, data={**fields, "decision": "deny", "reason": "a stuck consumer, not load"},
                          timeout=30)
    assert response.status_code == 200
    view = wait(agent, proposed["run_id"], {"denied"})
    denial = next(d for d in view["decisions"] if d["event"] == "consent_denied")
    assert denial["reason"] == "a stuck consumer, not load"
    assert app.stack.arm is not None
    assert app.stack.arm.resource(VMSS)["capacity"] == 2


def test_credentials_denied_end_the_run_with_nothing_done(app: App, agent: Agent, alice: requests.Session) -> None:
    proposed = agent.tool("propose_plan", plan(WRITE["review"]))
    decide(alice, proposed["waiting_for"]["approval_url"], "approve")
    decide(alice, waiting(agent, proposed["run_id"], "credentials")["approval_url"], "deny")
    view = wait(agent, proposed["run_id"], {"denied"})
    assert "credentials denied" in view["outcome"]
    assert app.stack.arm is not None
    assert app.stack.arm.resource(VMSS)["capacity"] == 2


def test_a_requester_the_policy_does_not_name_cannot_consent_the_approver_is_asked(
        app: App, agent: Agent, alice: requests.Session) -> None:
    app.stack.arm.assign_role(AGENT, "Virtual Machine Contributor", VMSS)  # type: ignore[union-attr]
    proposed = agent.tool("propose_plan", plan(WRITE["review"], requester=(BOB_OID, BOB)))
    link = proposed["waiting_for"]["approval_url"]
    assert proposed["waiting_for"]["asked_of"] == [ALICE]
    bob = app.session(BOB)
    assert "not an approver" in bob.get(link, timeout=30).text  # his page offers no decision
    fields = scenario.form_fields(alice, link)
    assert bob.post(link, data={**fields, "decision": "approve"}, timeout=30).status_code == 403
    decide(alice, link, "approve")
    assert wait(agent, proposed["run_id"], set(scenario.TERMINAL))["state"] == "succeeded"


def test_the_refusals_create_nothing(app: App, agent: Agent, alice: requests.Session) -> None:
    before = run_ids(app, alice)
    outside = plan(READ["review"], VMSS.replace("rg-prod-workers", "rg-elsewhere"))
    cases = [
        (agent.post("/api/plans", plan([{"action": "vmss.delete"}])), 400, "steps[0].action"),
        (agent.post("/api/plans", plan([{"action": "vmss.set_capacity", "parameters": {"capacity": 5000}}])), 400,
         "steps[0].parameters"),
        (agent.post("/api/plans", outside), 403, "resource_id"),
        (agent.post("/api/plans", plan(READ["review"]), token=token(app, GATES_APP)), 403, None),
    ]
    for response, status, field in cases:
        assert response.status_code == status, response.text
        if field:
            assert response.json()["field"] == field
    other_audience = agent.post("/api/plans", plan(READ["review"]),
                                token=token(app, scope="https://management.azure.com/.default"))
    assert other_audience.status_code == 401
    assert run_ids(app, alice) == before


def test_a_replayed_key_with_another_plan_is_a_409(agent: Agent) -> None:
    first = agent.post("/api/plans", plan(READ["review"], key="e2e-replay"))
    assert first.status_code == 202
    again = agent.post("/api/plans", plan(READ["review"], key="e2e-replay"))
    assert (again.status_code, again.json()["run_id"]) == (200, first.json()["run_id"])
    other = agent.post("/api/plans", plan(WRITE["review"], key="e2e-replay"))
    assert (other.status_code, other.json()["field"]) == (409, "idempotency_key")


def test_proposals_with_one_key_at_the_same_instant_make_one_run(agent: Agent) -> None:
    document = plan(READ["review"], key="e2e-race")
    barrier = threading.Barrier(6)
    answers: list[requests.Response] = []

    def propose() -> None:
        barrier.wait()
        answers.append(agent.post("/api/plans", document))

    threads = [threading.Thread(target=propose) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert sorted(a.status_code for a in answers) == [200] * 5 + [202]


def test_the_plan_api_over_plain_http_reads_back_for_the_agent_only(app: App, agent: Agent,
                                                                      alice: requests.Session) -> None:
    proposed = agent.post("/api/plans", plan(READ["review"]))
    assert proposed.status_code == 202
    run_id = proposed.json()["run_id"]
    view = scenario.wait_until(lambda: (v := agent.get_run(run_id).json())["state"] == "succeeded" and v,
                               TIMEOUT, "the run to succeed")
    assert view["steps"][0]["identity"] == "agent"
    assert agent.get_run(run_id, token=token(app, GATES_APP)).status_code == 403
    person = scenario.get_run(alice, app.base_url, run_id)
    assert person["proposal"]["agent"] == "agent-review"


def test_the_mcp_endpoint_lists_the_tools_and_needs_its_key(app: App, agent: Agent) -> None:
    assert set(agent.tools()) == {"list_actions", "check_plan", "propose_plan", "get_run", "cancel_run"}
    refused = requests.post(f"{app.base_url}/runtime/webhooks/mcp", timeout=10,
                            headers={"Authorization": f"Bearer {agent.token}"},
                            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401
    unauthenticated = requests.post(f"{app.base_url}/runtime/webhooks/mcp", timeout=10,
                                    headers={"x-functions-key": MCP_KEY},
                                    json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert unauthenticated.status_code == 401  # App Service Authentication stands in front of it
    assert "WWW-Authenticate" in unauthenticated.headers
    checked = agent.tool("check_plan", plan(WRITE["review"], requester=(BOB_OID, BOB)))
    assert checked["decision"] == "consent"
    assert checked["consent_from"] == [ALICE]
    assert checked["credentials"]["asked_of"] == [BOB]
