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

POWER_DISPLAY = {
    "running": "VM running", "stopped": "VM stopped", "deallocated": "VM deallocated",
    "starting": "VM starting", "stopping": "VM stopping", "deallocating": "VM deallocating",
}


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def resource_id(subscription: str, resource_group: str, resource_type: str, name: str) -> str:
    """A nested type (`Microsoft.Sql/servers/failoverGroups`) takes a nested name (`srv/fog`)."""
    namespace, *types = resource_type.split("/")
    names = name.split("/")
    if len(types) != len(names):
        raise ValueError(f"resource {name!r} of type {resource_type} needs one name per type segment")
    pairs = "/".join(f"{t}/{n}" for t, n in zip(types, names, strict=True))
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{namespace}/{pairs}"


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
    health: str = "Available"  # Resource Health's availabilityState
    metrics: dict[str, list[float]] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)  # the writes that completed on it, in order

    @property
    def id(self) -> str:
        return resource_id(self.subscription, self.resource_group, self.type, self.name)

    def arm_json(self, expand_instance_view: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name.rsplit("/", 1)[-1], "id": self.id, "type": self.type,
                                "location": self.location}
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
        else:
            properties["provisioningState"] = self.provisioning_state
        body["properties"] = properties
        return body

    def apply(self, effects: dict[str, Any], request_body: dict[str, Any]) -> None:
        """Set each effect's target (a fact or a JSON pointer into the ARM body) to its value."""
        from .operations import resolve

        for target, raw in effects.items():
            found, value = resolve(raw, request_body)
            if not found:
                continue
            if target == "powerState":
                self.power_state = value
            elif target == "provisioningState":
                self.provisioning_state = value
            else:
                self._set(target, value)

    def _set(self, pointer: str, value: Any) -> None:
        head, *rest = [t for t in pointer.strip("/").split("/") if t]
        if head == "sku":
            self.sku = self.sku if self.sku is not None else {}
            container: Any = self.sku
        elif head == "tags":
            container = self.tags
        elif head == "properties":
            container = self.properties
        else:
            raise ValueError(f"the stand-in cannot change {pointer} (only sku, tags and properties)")
        if not rest:
            container.clear()
            container.update(value)
            return
        for token in rest[:-1]:
            container = container.setdefault(token, {})
        container[rest[-1]] = value

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
                "capacity": (self.sku or {}).get("capacity"), "applied": list(self.applied),
                "arm": self.arm_json(expand_instance_view=self.type == VM)}

    def record_restart(self) -> None:
        self.restart_count += 1
        self.last_restart_time = utc_now()


def resource_from_fixture(subscription: str, entry: dict[str, Any], types: dict[str, Any]) -> Resource:
    resource_type = entry["type"]
    spec = types.get(resource_type.lower())
    if spec is None:
        raise ValueError(f"the ARM stand-in does not serve resources of type {resource_type}: "
                         "describe the type under 'resourceTypes' in the fixture")
    default_power = spec.default_power_state
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
        health=entry.get("health", "Available"),
        metrics={str(k): [float(x) for x in v] for k, v in entry.get("metrics", {}).items()},
    )
