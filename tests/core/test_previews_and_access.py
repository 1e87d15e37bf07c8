"""The pure parts of previews and grant checks: what a preview says, when a resource has drifted, and
whether a person's effective permissions cover a step."""

from __future__ import annotations

import pytest

from shared.core.access import missing_permissions
from shared.core.arm_outcomes import ArmOutcome, OutcomeKind
from shared.core.model import ActionKind, FieldPreview, Step, StepPreview
from shared.core.previews import MISSING, build_preview, describe, drifted, preview_read
from tests.pipeline import CATALOG

SCALE = Step(0, "vmss.set_capacity", ActionKind.WRITE, "Microsoft.Compute/virtualMachineScaleSets/write",
             {"capacity": 4})
RESTART = Step(0, "vm.restart", ActionKind.WRITE, "Microsoft.Compute/virtualMachines/restart/action")


def read(body: dict[str, object]) -> ArmOutcome:
    return ArmOutcome(OutcomeKind.SUCCEEDED, 200, body=body)


def test_a_preview_takes_before_from_the_read_and_after_from_the_parameter() -> None:
    preview = build_preview(SCALE, CATALOG["vmss.set_capacity"], read({"sku": {"capacity": 2}}))
    assert preview.fields == (FieldPreview("/sku/capacity", "instances", 2, 4),)
    assert describe(preview) == "instances 2 → 4"


def test_a_preview_takes_after_from_a_constant() -> None:
    body = {"statuses": [{"displayStatus": "Provisioning succeeded"}, {"displayStatus": "VM running"}]}
    preview = build_preview(RESTART, CATALOG["vm.restart"], read(body))
    assert describe(preview) == "power state VM running → VM restarting"


def test_a_field_the_read_lacks_is_shown_as_missing() -> None:
    preview = build_preview(SCALE, CATALOG["vmss.set_capacity"], read({}))
    assert preview.fields[0].before == MISSING


def test_a_failed_read_makes_an_unavailable_preview() -> None:
    preview = build_preview(SCALE, CATALOG["vmss.set_capacity"],
                            ArmOutcome(OutcomeKind.SECURITY_CHALLENGE, 403, "AuthorizationFailed", "no"))
    assert preview.unavailable == "the current state could not be read (403 AuthorizationFailed)"


def test_the_preview_read_is_a_get_of_the_declared_path() -> None:
    spec = preview_read(CATALOG["aks.scale_node_pool"])
    assert spec is not None
    assert (spec.method, spec.path_suffix, spec.kind, spec.body_template) == \
        ("GET", "/agentPools/{nodePool}", ActionKind.READ, None)
    assert preview_read(CATALOG["vm.read"]) is None


def _with(before: object) -> StepPreview:
    return StepPreview(0, "vmss.set_capacity", (FieldPreview("/sku/capacity", "instances", before, 4),))


@pytest.mark.parametrize(("seen", "fresh", "changed"), [
    (_with(2), _with(2), False),
    (_with(2), _with(3), True),
    (_with(2), StepPreview(0, "vmss.set_capacity", unavailable="could not be read"), True),
    (StepPreview(0, "vmss.set_capacity", unavailable="could not be read"), _with(3), False),
])
def test_drift_is_a_change_in_what_the_approver_saw(seen: StepPreview, fresh: StepPreview, changed: bool) -> None:
    assert drifted(seen, fresh) is changed


def test_a_wildcard_action_covers_a_permission() -> None:
    entries = [{"actions": ["Microsoft.Compute/virtualMachines/*"], "notActions": []}]
    assert missing_permissions(entries, ["Microsoft.Compute/virtualMachines/restart/action"]) == []


def test_not_actions_take_a_permission_away() -> None:
    entries = [{"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Write"]}]
    assert missing_permissions(entries, ["Microsoft.Authorization/roleAssignments/write", "a.b/c/read"]) == \
        ["Microsoft.Authorization/roleAssignments/write"]


def test_a_reader_lacks_every_write() -> None:
    entries = [{"actions": ["*/read"], "notActions": []}]
    assert missing_permissions(entries, ["Microsoft.Web/sites/read", "Microsoft.Web/sites/restart/action"]) == \
        ["Microsoft.Web/sites/restart/action"]


def test_one_role_entry_is_enough_when_another_lacks_it() -> None:
    entries = [{"actions": ["*/read"]}, {"actions": ["Microsoft.Web/sites/*"], "notActions": []}]
    assert missing_permissions(entries, ["Microsoft.Web/sites/restart/action"]) == []


def test_a_consent_requests_previews_and_a_steps_permissions_survive_storage() -> None:
    import datetime as dt

    from shared.core.codec import request_from_dict, request_to_dict, step_from_dict, step_to_dict
    from shared.core.model import Request, RequestKind

    request = Request("r1", RequestKind.CONSENT, dt.datetime(2026, 12, 1, tzinfo=dt.UTC), (), "h",
                      previews=(_with(2), StepPreview(1, "vm.restart", unavailable="could not be read")))
    assert request_from_dict(request_to_dict(request)) == request
    step = Step(0, "vm.restart", ActionKind.WRITE, "a.b/c/action", permissions=("a.b/c/action", "a.b/c/read"))
    assert step_from_dict(step_to_dict(step)) == step
