"""The app's own ARM adapter (`shared.adapters.arm_client`) against the ARM stand-in: the code that runs in
Azure, unchanged, meeting ARM's answers over HTTPS."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from local_azure.arm import ArmStandIn
from shared.adapters.arm_client import ArmResourceManager
from shared.core.arm_outcomes import ArmOutcome, OutcomeKind
from shared.core.model import ArmOperation
from tests.local_azure.test_arm import AGENT, ALICE, BOB, ISSUER, RG_WEB, SITE, STEP_UP, VM1, VMSS, Credential, Signer
from tests.pipeline import CATALOG

CLIENT_REQUEST_ID = "5f0c6a2e-0d1b-4c8e-9a57-3b2f9e1d7c40"


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def module_arm(signer: Signer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArmStandIn]:
    with ArmStandIn(state_dir=tmp_path_factory.mktemp("arm-adapter"), jwks=signer.jwks(), issuers=[ISSUER],
                    operation_polls=2) as stand_in:
        yield stand_in


@pytest.fixture
def arm(module_arm: ArmStandIn, monkeypatch: pytest.MonkeyPatch) -> ArmStandIn:
    module_arm.reset()
    # How the app trusts the stand-in locally: the environment, not a code path of its own.
    for name, value in module_arm.client_environment().items():
        monkeypatch.setenv(name, value)
    return module_arm


@pytest.fixture
def manager(arm: ArmStandIn) -> ArmResourceManager:
    return ArmResourceManager(arm.endpoint, retry_total=2, polling_interval=0)


def test_a_restart_by_alice_succeeds_and_the_vm_was_restarted_by_her(arm: ArmStandIn, manager: ArmResourceManager,
                                                                     signer: Signer) -> None:
    outcome = manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE))
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert arm.resource(VM1)["restartCount"] == 1
    assert {(e["principalId"], e["outcome"]) for e in arm.activity()} == {(ALICE, "Accepted"), (ALICE, "Succeeded")}


def test_the_agents_restart_is_a_security_challenge_and_changes_nothing(arm: ArmStandIn, manager: ArmResourceManager,
                                                                         signer: Signer) -> None:
    outcome = manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, AGENT))
    assert (outcome.kind, outcome.status, outcome.code) == (OutcomeKind.SECURITY_CHALLENGE, 403, "AuthorizationFailed")
    assert arm.resource(VM1)["restartCount"] == 0


def test_a_claims_challenge_reaches_the_app_with_its_claims(arm: ArmStandIn, manager: ArmResourceManager,
                                                           signer: Signer) -> None:
    arm.add_fault("claims_challenge", principal=AGENT, claims=STEP_UP)
    outcome = manager.perform(CATALOG["vm.read_instance_view"], VM1, {}, Credential(signer, AGENT))
    assert (outcome.kind, outcome.status) == (OutcomeKind.SECURITY_CHALLENGE, 401)
    assert outcome.claims is not None
    assert json.loads(base64.b64decode(outcome.claims)) == STEP_UP


def test_reading_the_instance_view_returns_the_power_state(manager: ArmResourceManager, signer: Signer) -> None:
    outcome = manager.perform(CATALOG["vm.read_instance_view"], VM1, {}, Credential(signer, AGENT))
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert outcome.body is not None
    assert "PowerState/running" in [s["code"] for s in outcome.body["statuses"]]


def test_a_web_app_restart_succeeds_at_once(arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    outcome = manager.perform(CATALOG["webapp.restart"], SITE, {}, Credential(signer, ALICE))
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert arm.resource(SITE)["restartCount"] == 1


def test_throttling_is_ridden_out_by_the_pipeline(arm: ArmStandIn, manager: ArmResourceManager,
                                                 signer: Signer) -> None:
    arm.add_fault("throttle", count=1, retry_after=1)
    outcome = manager.perform(CATALOG["vm.read"], VM1, {}, Credential(signer, BOB))
    assert outcome.kind is OutcomeKind.SUCCEEDED


def test_a_locked_resource_group_is_a_failure_not_a_challenge(arm: ArmStandIn, manager: ArmResourceManager,
                                                             signer: Signer) -> None:
    arm.add_lock(RG_WEB, "ReadOnly")
    outcome = manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE))
    assert (outcome.kind, outcome.status, outcome.code) == (OutcomeKind.FAILED, 409, "ScopeLocked")
    assert arm.resource(VM1)["restartCount"] == 0


def test_a_failed_operation_is_a_failure(arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    arm.add_fault("operation_failure", resource=VM1, code="VMAgentStatusCommunicationError",
                  message="VM 'vm-web-01' has not reported status for VM agent or extensions.")
    outcome = manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE))
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.code == "VMAgentStatusCommunicationError"


def test_scaling_waits_for_the_update_to_complete(arm: ArmStandIn, manager: ArmResourceManager,
                                                  signer: Signer) -> None:
    outcome = manager.perform(CATALOG["vmss.set_capacity"], VMSS, {"capacity": 3}, Credential(signer, ALICE))
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert (arm.resource(VMSS)["capacity"], arm.resource(VMSS)["provisioningState"]) == (3, "Succeeded")



def test_a_write_whose_answer_is_lost_is_not_sent_again(arm: ArmStandIn, manager: ArmResourceManager,
                                                       signer: Signer) -> None:
    arm.add_fault("gateway_timeout", resource=VM1, method="POST", count=3)
    outcome = manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE))
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.status == 504
    restarts = [e for e in arm.activity() if e["outcome"] == "Accepted"]
    assert len(restarts) == 1  # azure-core alone would have sent the POST 3 times


def test_a_throttled_write_is_retried_because_arm_did_nothing(arm: ArmStandIn, manager: ArmResourceManager,
                                                             signer: Signer) -> None:
    arm.add_fault("throttle", resource=VM1, method="POST", count=1, retry_after=0)
    outcome = manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE))
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert arm.resource(VM1)["restartCount"] == 1


def test_a_throttled_write_is_not_sent_again_when_the_kill_switch_says_no(
        arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    arm.add_fault("throttle", resource=VM1, method="POST", count=1, retry_after=0)
    asked: list[bool] = []

    def thrown() -> bool:
        asked.append(True)
        return False

    outcome = manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE), may_retry=thrown)
    assert (outcome.kind, outcome.status) == (OutcomeKind.NOT_SENT, 429)
    assert asked == [True]
    assert arm.resource(VM1)["restartCount"] == 0


def test_a_read_answered_504_is_retried(arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    arm.add_fault("gateway_timeout", resource=VM1, method="GET", count=1)
    outcome = manager.perform(CATALOG["vm.read"], VM1, {}, Credential(signer, BOB))
    assert outcome.kind is OutcomeKind.SUCCEEDED


def test_an_accepted_write_that_cannot_be_followed_is_a_failure_never_a_challenge(
        arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    arm.add_fault("poll_forbidden", count=5)
    outcome = manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE))
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.code == "OperationOutcomeUnknown"


def test_an_accepted_write_is_handed_over_with_its_operation_before_it_is_followed(
        arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    seen: list[tuple[ArmOperation, str]] = []

    def accepted(operation: ArmOperation) -> None:  # what ARM holds at the moment it is handed over
        seen.append((operation, next(iter(arm.state.operations.values())).status))

    outcome = manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE),
                              client_request_id=CLIENT_REQUEST_ID, on_accepted=accepted)
    assert outcome.kind is OutcomeKind.SUCCEEDED
    [(operation, status_then)] = seen
    assert status_then == "InProgress"
    assert (operation.method, operation.status) == ("POST", 202)
    assert operation.async_operation is not None
    assert "/operations/" in operation.async_operation
    assert operation.location is not None
    assert "/operationResults/" in operation.location
    assert operation.correlation_id == CLIENT_REQUEST_ID
    assert operation.request_id


def test_the_activity_log_finds_a_write_by_the_id_the_app_sent(arm: ArmStandIn, manager: ArmResourceManager,
                                                               signer: Signer) -> None:
    arm.add_fault("gateway_timeout", resource=VM1, method="POST", count=1)
    outcome = manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE),
                              client_request_id=CLIENT_REQUEST_ID)
    assert outcome.status == 504  # no answer: the id sent is all the app knows
    assert [e["correlationId"] for e in arm.activity() if e["outcome"] == "Accepted"] == [CLIENT_REQUEST_ID]


def test_an_operation_accepted_earlier_is_followed_to_its_end_with_another_credential(
        arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    recorded: list[ArmOperation] = []
    slow = ArmResourceManager(arm.endpoint, retry_total=2, polling_interval=0)
    slow._poll = lambda client, initial: ArmOutcome(OutcomeKind.FAILED, 0, "HostStopped")  # type: ignore[method-assign]
    slow.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE), on_accepted=recorded.append)
    assert arm.resource(VM1)["restartCount"] == 0  # the first host never followed it

    outcome = manager.resume(recorded[0], Credential(signer, AGENT))  # the agent may read, not restart
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert arm.resource(VM1)["restartCount"] == 1
    assert [e["outcome"] for e in arm.activity()] == ["Accepted", "Succeeded"]


def test_a_resumed_operation_that_failed_is_a_failure(arm: ArmStandIn, manager: ArmResourceManager,
                                                      signer: Signer) -> None:
    arm.add_fault("operation_failure", resource=VM1, code="VMAgentStatusCommunicationError", message="no agent")
    recorded: list[ArmOperation] = []
    slow = ArmResourceManager(arm.endpoint, retry_total=2, polling_interval=0)
    slow._poll = lambda client, initial: ArmOutcome(OutcomeKind.FAILED, 0, "HostStopped")  # type: ignore[method-assign]
    slow.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE), on_accepted=recorded.append)
    outcome = manager.resume(recorded[0], Credential(signer, AGENT))
    assert (outcome.kind, outcome.code) == (OutcomeKind.FAILED, "VMAgentStatusCommunicationError")


def test_a_resumed_scale_set_update_waits_for_its_end(arm: ArmStandIn, manager: ArmResourceManager,
                                                     signer: Signer) -> None:
    recorded: list[ArmOperation] = []
    slow = ArmResourceManager(arm.endpoint, retry_total=2, polling_interval=0)
    slow._poll = lambda client, initial: ArmOutcome(OutcomeKind.FAILED, 0, "HostStopped")  # type: ignore[method-assign]
    slow.perform(CATALOG["vmss.set_capacity"], VMSS, {"capacity": 4}, Credential(signer, ALICE),
                 on_accepted=recorded.append)
    assert recorded[0].status == 200
    outcome = manager.resume(recorded[0], Credential(signer, ALICE))
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert arm.resource(VMSS)["provisioningState"] == "Succeeded"


def test_a_slow_answer_is_held_after_arm_acted_until_released(arm: ArmStandIn, manager: ArmResourceManager,
                                                              signer: Signer) -> None:
    import threading

    arm.add_fault("slow_answer", resource=VM1, method="POST", seconds=60, count=1)
    outcomes: list[ArmOutcome] = []
    caller = threading.Thread(target=lambda: outcomes.append(
        manager.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE))))
    caller.start()
    for _ in range(200):
        if arm.held_answers() == 1:
            break
        threading.Event().wait(0.05)
    assert arm.held_answers() == 1
    assert [e["outcome"] for e in arm.activity()] == ["Accepted"]  # ARM acted; the caller does not know yet
    arm.release_answers()
    caller.join(30)
    assert outcomes[0].kind is OutcomeKind.SUCCEEDED


def test_a_long_operation_stays_in_progress_however_often_it_is_polled(
        arm: ArmStandIn, manager: ArmResourceManager, signer: Signer) -> None:
    arm.add_fault("long_operation", resource=VM1, seconds=600, count=1)
    recorded: list[ArmOperation] = []
    slow = ArmResourceManager(arm.endpoint, retry_total=2, polling_interval=0)
    slow._poll = lambda client, initial: ArmOutcome(OutcomeKind.FAILED, 0, "HostStopped")  # type: ignore[method-assign]
    slow.perform(CATALOG["vm.restart"], VM1, {}, Credential(signer, ALICE), on_accepted=recorded.append)
    [operation] = arm.state.operations.values()
    assert {arm.state.poll(operation.id).status for _ in range(5)} == {"InProgress"}  # type: ignore[union-attr]
