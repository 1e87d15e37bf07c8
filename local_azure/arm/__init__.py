"""Azure Resource Manager stand-in: ARM's REST protocol, RBAC, long-running operations and error bodies over
HTTPS for `azure-core` clients. See `ArmStandIn`."""

from .server import ArmStandIn

__all__ = ["ArmStandIn"]
