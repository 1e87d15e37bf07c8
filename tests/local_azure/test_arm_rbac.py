"""RBAC evaluation in the ARM stand-in: Azure's wildcard, notActions and scope-inheritance rules."""

from __future__ import annotations

import pytest

from local_azure.arm.rbac import AccessControl, is_within

SUB = "/subscriptions/2b5c3f6e-0000-4000-8000-0000000005b1"
RG = f"{SUB}/resourceGroups/rg-prod-web"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-web-01"
SITE = f"{RG}/providers/Microsoft.Web/sites/app-checkout"
USER = "a11ce000-0000-4000-8000-000000000001"


def granted(role: str, scope: str = SUB) -> AccessControl:
    access = AccessControl()
    access.assign(USER, role, scope)
    return access


@pytest.mark.parametrize("action", ["Microsoft.Compute/virtualMachines/read", "Microsoft.Web/sites/read",
                                    "Microsoft.Resources/subscriptions/resourceGroups/read"])
def test_reader_reads_everything(action: str) -> None:
    assert granted("Reader").is_permitted(USER, action, VM)


@pytest.mark.parametrize("action", ["Microsoft.Compute/virtualMachines/restart/action",
                                    "Microsoft.Compute/virtualMachineScaleSets/write"])
def test_reader_writes_nothing(action: str) -> None:
    assert not granted("Reader").is_permitted(USER, action, VM)


def test_vm_contributor_restarts_vms_but_not_web_apps() -> None:
    access = granted("Virtual Machine Contributor", RG)
    assert access.is_permitted(USER, "Microsoft.Compute/virtualMachines/restart/action", VM)
    assert not access.is_permitted(USER, "Microsoft.Web/sites/restart/action", SITE)


def test_website_contributor_restarts_web_apps_but_not_vms() -> None:
    access = granted("Website Contributor", RG)
    assert access.is_permitted(USER, "Microsoft.Web/sites/restart/action", SITE)
    assert not access.is_permitted(USER, "Microsoft.Compute/virtualMachines/restart/action", VM)


def test_contributor_may_not_write_role_assignments() -> None:
    access = granted("Contributor")
    assert access.is_permitted(USER, "Microsoft.Compute/virtualMachines/restart/action", VM)
    assert not access.is_permitted(USER, "Microsoft.Authorization/roleAssignments/write", VM)


def test_owner_may_write_role_assignments() -> None:
    assert granted("Owner").is_permitted(USER, "Microsoft.Authorization/roleAssignments/write", VM)


def test_actions_match_case_insensitively() -> None:
    assert granted("Virtual Machine Contributor").is_permitted(
        USER, "microsoft.compute/VIRTUALMACHINES/restart/action", VM.upper())


def test_an_assignment_covers_its_scope_and_below_but_not_above_or_beside() -> None:
    access = granted("Virtual Machine Contributor", VM)
    restart = "Microsoft.Compute/virtualMachines/restart/action"
    assert access.is_permitted(USER, restart, VM)
    assert not access.is_permitted(USER, restart, VM.replace("vm-web-01", "vm-web-02"))
    assert not access.is_permitted(USER, "Microsoft.Resources/subscriptions/resourceGroups/read", RG)


def test_scopes_nest_by_whole_segments() -> None:
    assert is_within(VM, RG)
    assert not is_within(f"{SUB}/resourceGroups/rg-prod-web-2", RG)
    assert is_within(RG.lower(), RG)


def test_another_principals_assignment_grants_nothing() -> None:
    assert not granted("Owner").is_permitted("b0b00000-0000-4000-8000-000000000002",
                                             "Microsoft.Compute/virtualMachines/read", VM)


def test_roles_are_found_by_name_or_id() -> None:
    access = AccessControl()
    assert access.role("reader").id == access.role("acdd72a7-3385-48ef-bd42-f606fba81ae7").id == access.role(
        "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7").id


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(KeyError):
        AccessControl().assign(USER, "Chief Button Pusher", SUB)


def test_unassigning_removes_only_what_matches() -> None:
    access = granted("Reader")
    access.assign(USER, "Contributor", RG)
    removed = access.unassign(principal_id=USER, role="Contributor")
    assert [access.roles[a.role_definition_id].name for a in removed] == ["Contributor"]
    assert access.is_permitted(USER, "Microsoft.Compute/virtualMachines/read", VM)
