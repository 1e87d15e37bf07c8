"""The composition root: settings, response plans, telemetry, and one blueprint per stage.

The response plan file is validated here, at start-up: a mistake stops the app with the file, the
entry and the problem. Connections are made on first use.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import azure.functions as func

from gates import blueprints
from shared.bootstrap import build_services
from shared.core.plans import load_plan_book
from shared.services import ServicesProvider
from shared.settings import APP_ROOT, Settings

_plans_setting = Path(os.environ.get("GATES_RESPONSE_PLANS", "config/response-plans.json"))
PLANS = load_plan_book(_plans_setting if _plans_setting.is_absolute() else APP_ROOT / _plans_setting)
logging.getLogger("sre_gates").info("response plans v%s loaded: %d plan(s)", PLANS.version, len(PLANS.plans))

services = ServicesProvider(lambda: build_services(Settings.from_env(), PLANS))

app = func.FunctionApp()
for blueprint in blueprints(services):
    app.register_blueprint(blueprint)
