"""The actions a runbook can use, each with its kind and the ARM permission it needs.

An action always acts on the alert's target resource; it names the resource type it applies to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.core.model import ActionKind

VM = "Microsoft.Compute/virtualMachines"
SITE = "Microsoft.Web/sites"
VMSS = "Microsoft.Compute/virtualMachineScaleSets"
COMPUTE_API = "2024-07-01"
WEB_API = "2023-12-01"


@dataclass(frozen=True)
class ActionSpec:
    name: str
    kind: ActionKind
    permission: str
    resource_type: str
    method: str
    path_suffix: str
    api_version: str
    description: str
    long_running: bool = False
    parameters: tuple[str, ...] = ()
    body_template: dict[str, Any] = field(default_factory=dict)

    def body(self, parameters: dict[str, Any]) -> dict[str, Any] | None:
        if self.name == "vmss.set_capacity":
            return {"sku": {"capacity": int(parameters["capacity"])}}
        return None


CATALOG: dict[str, ActionSpec] = {spec.name: spec for spec in (
    ActionSpec("vm.read", ActionKind.READ, f"{VM}/read", VM, "GET", "", COMPUTE_API,
               "read the virtual machine's configuration"),
    ActionSpec("vm.read_instance_view", ActionKind.READ, f"{VM}/read", VM, "GET", "/instanceView", COMPUTE_API,
               "read the virtual machine's power state"),
    ActionSpec("vm.restart", ActionKind.WRITE, f"{VM}/restart/action", VM, "POST", "/restart", COMPUTE_API,
               "restart the virtual machine", long_running=True),
    ActionSpec("vm.start", ActionKind.WRITE, f"{VM}/start/action", VM, "POST", "/start", COMPUTE_API,
               "start the virtual machine", long_running=True),
    ActionSpec("vm.deallocate", ActionKind.WRITE, f"{VM}/deallocate/action", VM, "POST", "/deallocate",
               COMPUTE_API, "stop and deallocate the virtual machine", long_running=True),
    ActionSpec("webapp.read", ActionKind.READ, f"{SITE}/read", SITE, "GET", "", WEB_API, "read the web app"),
    ActionSpec("webapp.restart", ActionKind.WRITE, f"{SITE}/restart/action", SITE, "POST", "/restart", WEB_API,
               "restart the web app"),
    ActionSpec("vmss.read", ActionKind.READ, f"{VMSS}/read", VMSS, "GET", "", COMPUTE_API, "read the scale set"),
    ActionSpec("vmss.set_capacity", ActionKind.WRITE, f"{VMSS}/write", VMSS, "PATCH", "", COMPUTE_API,
               "set the scale set's instance count", long_running=True, parameters=("capacity",)),
)}


def resource_type_of(resource_id: str) -> str:
    """`/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm` -> the type."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return ""
    i = len(lowered) - 1 - lowered[::-1].index("providers")
    namespace_and_types = parts[i + 1:]
    if len(namespace_and_types) < 3:
        return ""
    types = [namespace_and_types[0], *namespace_and_types[1::2]]
    return "/".join(types)


def subscription_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    return parts[1].lower() if len(parts) > 1 and parts[0].lower() == "subscriptions" else ""


def resource_group_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "resourcegroups" in lowered:
        i = lowered.index("resourcegroups")
        if i + 1 < len(parts):
            return parts[i + 1].lower()
    return ""
