"""Service Bus stand-in: an AMQP 1.0 endpoint (Qpid Proton) for the real `azure-servicebus` SDK.

Speaks `$cbs` put-token, peek-lock and receive-and-delete links, settlement echoes, the dead-letter
subqueue, scheduled messages and the `$management` operations an app and a Functions host use.
Queues come from an emulator-style Config.json (see `local_azure/config/servicebus.json`).
Messages larger than the tier allows (256 KB Standard by default) are refused as the service refuses
them. Messages live in memory only: nothing survives `stop()`. Never deployed; nothing in the app imports it.
"""

from .config import QueueSettings, emulator_config, load_queues
from .endpoint import STANDARD_MAX_MESSAGE_BYTES
from .server import ServiceBusStandIn

__all__ = ["STANDARD_MAX_MESSAGE_BYTES", "QueueSettings", "ServiceBusStandIn", "emulator_config", "load_queues"]
