"""The composition root: settings, response plans, telemetry, and one blueprint per stage.

Settings and the response plan file are validated here, at start-up: a missing or malformed setting
stops the app with its name, a mistake in the plans with the file, the entry and the problem.
Connections are made on first use.
"""

from __future__ import annotations

import logging

import azure.functions as func

from gates import blueprints
from shared.bootstrap import build_services
from shared.core.plans import load_plan_book
from shared.services import ServicesProvider
from shared.settings import Settings, response_plans_path

PLANS = load_plan_book(response_plans_path())
logging.getLogger("sre_gates").info("response plans v%s loaded: %d plan(s)", PLANS.version, len(PLANS.plans))

SETTINGS = Settings.from_env()

services = ServicesProvider(lambda: build_services(SETTINGS, PLANS))

app = func.FunctionApp()
for blueprint in blueprints(services):
    app.register_blueprint(blueprint)
