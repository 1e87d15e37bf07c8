"""Azure RBAC as ARM evaluates it: a principal may perform an action over a scope when some role assignment
at that scope or above grants a role whose `actions` match the action and whose `notActions` do not."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class RoleDefinition:
    id: str  # the GUID, as in /providers/Microsoft.Authorization/roleDefinitions/<id>
    name: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()

    def permits(self, action: str) -> bool:
        return any(_matches(p, action) for p in self.actions) and not any(_matches(p, action)
                                                                            for p in self.not_actions)


@dataclass(frozen=True)
class RoleAssignment:
    name: str  # the assignment's GUID
    principal_id: str
    role_definition_id: str
    scope: str

    def as_json(self, roles: dict[str, RoleDefinition]) -> dict[str, Any]:
        role = roles.get(self.role_definition_id)
        return {
            "id": f"{self.scope}/providers/Microsoft.Authorization/roleAssignments/{self.name}",
            "name": self.name,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "principalId": self.principal_id,
                "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{self.role_definition_id}",
                "roleDefinitionName": role.name if role else None,
                "scope": self.scope,
            },
        }


# The built-in roles the product meets, with the ids and permissions Azure publishes (trimmed to the
# resource providers the stand-in serves; the wildcards are Azure's own).
BUILT_IN_ROLES: tuple[RoleDefinition, ...] = (
    RoleDefinition("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner", ("*",)),
    RoleDefinition("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor", ("*",), (
        "Microsoft.Authorization/*/Delete",
        "Microsoft.Authorization/*/Write",
        "Microsoft.Authorization/elevateAccess/Action",
        "Microsoft.Blueprint/blueprintAssignments/write",
        "Microsoft.Blueprint/blueprintAssignments/delete",
        "Microsoft.Compute/galleries/share/action",
    )),
    RoleDefinition("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", ("*/read",)),
    RoleDefinition("9980e02c-c2be-4d73-94e8-173b1dc7cf3c", "Virtual Machine Contributor", (
        "Microsoft.Authorization/*/read",
        "Microsoft.Compute/availabilitySets/*",
        "Microsoft.Compute/locations/*",
        "Microsoft.Compute/virtualMachines/*",
        "Microsoft.Compute/virtualMachineScaleSets/*",
        "Microsoft.Compute/disks/write",
        "Microsoft.Compute/disks/read",
        "Microsoft.Compute/disks/delete",
        "Microsoft.Insights/alertRules/*",
        "Microsoft.Network/networkInterfaces/*",
        "Microsoft.Network/virtualNetworks/read",
        "Microsoft.Network/virtualNetworks/subnets/join/action",
        "Microsoft.ResourceHealth/availabilityStatuses/read",
        "Microsoft.Resources/deployments/*",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Microsoft.Storage/storageAccounts/listKeys/action",
        "Microsoft.Storage/storageAccounts/read",
    )),
    RoleDefinition("de139f84-1756-47ae-9be6-808fbbe84772", "Website Contributor", (
        "Microsoft.Authorization/*/read",
        "Microsoft.Insights/alertRules/*",
        "Microsoft.Insights/components/*",
        "Microsoft.ResourceHealth/availabilityStatuses/read",
        "Microsoft.Resources/deployments/*",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Microsoft.Support/*",
        "Microsoft.Web/certificates/*",
        "Microsoft.Web/listSitesAssignedToHostName/read",
        "Microsoft.Web/serverFarms/join/action",
        "Microsoft.Web/serverFarms/read",
        "Microsoft.Web/sites/*",
    )),
)


class AccessControl:
    """Role definitions and assignments; not thread-safe on its own (the stand-in's state lock guards it)."""

    def __init__(self, custom_roles: list[RoleDefinition] | None = None) -> None:
        self.roles: dict[str, RoleDefinition] = {r.id: r for r in (*BUILT_IN_ROLES, *(custom_roles or []))}
        self.assignments: dict[str, RoleAssignment] = {}

    def role(self, name_or_id: str) -> RoleDefinition:
        """A role by display name, GUID, or full role definition id."""
        key = name_or_id.rsplit("/", 1)[-1].lower()
        for role in self.roles.values():
            if key in (role.id.lower(), role.name.lower()):
                return role
        raise KeyError(f"no role definition '{name_or_id}'")

    def assign(self, principal_id: str, role: str, scope: str, name: str | None = None) -> RoleAssignment:
        assignment = RoleAssignment(name or str(uuid.uuid4()), principal_id.lower(), self.role(role).id,
                                    normalise_scope(scope))
        self.assignments[assignment.name] = assignment
        return assignment

    def unassign(self, name: str | None = None, principal_id: str | None = None, role: str | None = None,
                 scope: str | None = None) -> list[RoleAssignment]:
        """Removes the assignment named, or every assignment matching the principal, role and scope given."""
        role_id = self.role(role).id if role else None
        removed = [a for a in self.assignments.values()
                   if (name is None or a.name == name)
                   and (principal_id is None or a.principal_id == principal_id.lower())
                   and (role_id is None or a.role_definition_id == role_id)
                   and (scope is None or a.scope.lower() == normalise_scope(scope).lower())]
        for assignment in removed:
            del self.assignments[assignment.name]
        return removed

    def is_permitted(self, principal_id: str, action: str, scope: str) -> bool:
        principal = principal_id.lower()
        return any(
            self.roles[a.role_definition_id].permits(action)
            for a in self.assignments.values()
            if a.principal_id == principal and a.role_definition_id in self.roles and is_within(scope, a.scope)
        )


def normalise_scope(scope: str) -> str:
    return "/" + scope.strip().strip("/")


def is_within(scope: str, ancestor: str) -> bool:
    """Segment-wise, case-insensitive: rg-prod is not an ancestor of rg-prod-web."""
    inner = normalise_scope(scope).lower()
    outer = normalise_scope(ancestor).lower()
    return outer in ("/", inner) or inner.startswith(outer + "/")


def _matches(pattern: str, action: str) -> bool:
    return _compiled(pattern).fullmatch(action) is not None


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)
