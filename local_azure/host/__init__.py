"""The local Azure Functions host: discovers `function_app:app` and drives its functions as the runtime does.

    host = FunctionsHost(project_dir, app="function_app:app", settings={...},
                         local_settings=Path("local.settings.json"), port=0,
                         auth_settings=Path("local_azure/config/authsettings.json"))
    with host:                        # start() / stop()
        host.base_url, host.port      # http://127.0.0.1:<port>; routes under /api (host.json routePrefix)
        host.function_key             # LOCAL_FUNCTION_KEYS (comma-separated) or generated; master: LOCAL_MASTER_KEY
        host.functions                # [FunctionSpec]: name, trigger_type, queue_name, route, methods, auth_level

    python -m local_azure.host --project . --port 7071 [--auth-settings FILE] [--setting NAME=VALUE ...]

Triggers: Service Bus queues (peek-lock through azure-servicebus, host.json `extensions.serviceBus`),
HTTP (function / admin keys, App Service Authentication in front when `auth_settings` is given) and
timers (six-field NCRONTAB). `signin.sign_in(base_url, username, password)` signs a `requests`
session in through Easy Auth. Settings are applied to `os.environ` for the host's lifetime (as Core
Tools does for the worker), so hosts in one process share them; nest their lifetimes.
"""

from local_azure.host.discovery import DiscoveryError, FunctionSpec
from local_azure.host.functions_host import FunctionsHost

__all__ = ["DiscoveryError", "FunctionSpec", "FunctionsHost"]
