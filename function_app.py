"""The composition root: settings, the action catalog, response plans, telemetry, one blueprint per stage.

Settings, the action catalog and the response plan file are validated here, at start-up (the catalog
before the plans, which name its actions): a missing or malformed setting stops the app with its name,
a mistake in the catalog or the plans with the file, the entry and the problem. Connections are made on
first use.
"""

from __future__ import annotations

import logging

import azure.functions as func

from gates import blueprints
from shared.bootstrap import build_services
from shared.core.catalog import load_catalog
from shared.core.plans import load_plan_book
from shared.services import ServicesProvider
from shared.settings import Settings, action_catalog_path, response_plans_path

# The Azure SDKs log every HTTP request and its response, headers included, at INFO: the worker forwards
# each record to the host, so each storage call cost a formatted log line or two (a sixth of the host's
# CPU in an alert storm) that says nothing an operator uses. Their warnings and errors still come through.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

CATALOG = load_catalog(action_catalog_path())
PLANS = load_plan_book(response_plans_path(), CATALOG)
logging.getLogger("sre_gates").info("action catalog v%s: %d action(s); response plans v%s: %d plan(s)",
                                    CATALOG.version, len(CATALOG), PLANS.version, len(PLANS.plans))

SETTINGS = Settings.from_env()

services = ServicesProvider(lambda: build_services(SETTINGS, PLANS))

app = func.FunctionApp()
for blueprint in blueprints(services):
    app.register_blueprint(blueprint)
