"""The local Azure Functions host: discovers `function_app:app` and drives its functions.

Service Bus queue triggers (peek-lock through azure-servicebus), HTTP triggers (with function keys and
App Service Authentication in front) and timer triggers (NCRONTAB). See `FunctionsHost`.
"""

from local_azure.host.discovery import DiscoveryError, FunctionSpec
from local_azure.host.functions_host import FunctionsHost

__all__ = ["DiscoveryError", "FunctionSpec", "FunctionsHost"]
