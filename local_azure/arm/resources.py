"""The resources the stand-in keeps, in ARM's JSON shapes, and the state changes their actions make."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

VM = "Microsoft.Compute/virtualMachines"
SITE = "Microsoft.Web/sites"
VMSS = "Microsoft.Compute/virtualMachineScaleSets"
RESOURCE_GROUP = "Microsoft.Resources/resourceGroups"
SUPPORTED_TYPES = (VM, SITE, VMSS)

# What a VM's power state is while an action runs, and what it is once the action completes.
VM_ACTIONS: dict[str, tuple[str, str]] = {
    "start": ("starting", "running"),
    "restart": ("starting", "running"),
    "powerOff": ("stopping", "stopped"),
    "deallocate": ("deallocating", "deallocated"),
}
POWER_DISPLAY = {
    "running": "VM running", "stopped": "VM stopped", "deallocated": "VM deallocated",
    "starting": "VM starting", "stopping": "VM stopping", "deallocating": "VM deallocating",
}
SITE_ACTIONS = ("restart", "start", "stop")


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def resource_id(subscription: str, resource_group: str, resource_type: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{resource_type}/{name}"


@dataclass
class ResourceGroup:
    subscription: str
    name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.name}"

    def arm_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": RESOURCE_GROUP, "location": self.location,
                "tags": dict(self.tags), "properties": {"provisioningState": "Succeeded"}}


@dataclass
class Resource:
    subscription: str
    resource_group: str
    type: str
    name: str
    location: str
    properties: dict[str, Any] = field(default_factory=dict)
    sku: dict[str, Any] | None = None
    kind: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    power_state: str | None = None  # VMs: running/stopped/deallocated (and the states between); sites: Running/Stopped
    provisioning_state: str = "Succeeded"
    restart_count: int = 0
    last_restart_time: str | None = None
    unique_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def id(self) -> str:
        return resource_id(self.subscription, self.resource_group, self.type, self.name)

    def arm_json(self, expand_instance_view: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "id": self.id, "type": self.type, "location": self.location}
        if self.kind:
            body["kind"] = self.kind
        if self.tags:
            body["tags"] = dict(self.tags)
        if self.sku is not None:
            body["sku"] = dict(self.sku)
        properties = dict(self.properties)
        if self.type == VM:
            properties["vmId"] = self.unique_id
            properties["provisioningState"] = self.provisioning_state
            if expand_instance_view:
                properties["instanceView"] = self.instance_view()
        elif self.type == VMSS:
            properties["uniqueId"] = self.unique_id
            properties["provisioningState"] = self.provisioning_state
        elif self.type == SITE:
            properties.update({"name": self.name, "state": self.power_state or "Running",
                               "enabled": True, "availabilityState": "Normal"})
            properties.setdefault("defaultHostName", f"{self.name}.azurewebsites.net")
            properties.setdefault("hostNames", [properties["defaultHostName"]])
        body["properties"] = properties
        return body

    def instance_view(self) -> dict[str, Any]:
        """A VM's `instanceView`: the statuses an operator (and the agent) reads the power state from."""
        provisioning = self.provisioning_state.lower()
        statuses: list[dict[str, Any]] = [{
            "code": f"ProvisioningState/{provisioning}",
            "level": "Info",
            "displayStatus": "Provisioning succeeded" if provisioning == "succeeded" else "Updating",
            **({"time": self.last_restart_time} if self.last_restart_time else {}),
        }]
        if self.power_state:
            statuses.append({"code": f"PowerState/{self.power_state}", "level": "Info",
                             "displayStatus": POWER_DISPLAY.get(self.power_state, self.power_state)})
        return {"computerName": self.name, "osName": "ubuntu", "osVersion": "22.04",
                "vmAgent": {"vmAgentVersion": "2.11.1.12",
                            "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info",
                                          "displayStatus": "Ready", "message": "Guest Agent is running"}]},
                "statuses": statuses}

    def inspection(self) -> dict[str, Any]:
        """What tests read: the ARM body plus the facts ARM does not show (restarts, power state)."""
        return {"id": self.id, "type": self.type, "name": self.name, "resourceGroup": self.resource_group,
                "powerState": self.power_state, "provisioningState": self.provisioning_state,
                "restartCount": self.restart_count, "lastRestartTime": self.last_restart_time,
                "capacity": (self.sku or {}).get("capacity"),
                "arm": self.arm_json(expand_instance_view=self.type == VM)}

    def record_restart(self) -> None:
        self.restart_count += 1
        self.last_restart_time = utc_now()


def resource_from_fixture(subscription: str, entry: dict[str, Any]) -> Resource:
    resource_type = entry["type"]
    if resource_type not in SUPPORTED_TYPES:
        raise ValueError(f"the ARM stand-in does not serve resources of type {resource_type}")
    default_power = {VM: "running", SITE: "Running"}.get(resource_type)
    return Resource(
        subscription=subscription,
        resource_group=entry["resourceGroup"],
        type=resource_type,
        name=entry["name"],
        location=entry.get("location", "westeurope"),
        properties=dict(entry.get("properties", {})),
        sku=dict(entry["sku"]) if "sku" in entry else None,
        kind=entry.get("kind"),
        tags=dict(entry.get("tags", {})),
        power_state=entry.get("powerState", default_power),
    )
