"""The templates keep the promises of infra/README.md: no keys, least privilege, authentication in front."""

from __future__ import annotations

import json
import re

from tests.infra.bicep import INFRA, MODULES, bicep_files, parse, resource_properties

# Every audit event the app emits as an Application Insights custom event.
AUDIT_EVENTS = {
    "gates.run_started", "gates.consent_requested", "gates.consent_granted", "gates.consent_denied",
    "gates.consent_expired", "gates.credential_requested", "gates.credential_granted", "gates.credential_denied",
    "gates.credential_expired", "gates.credential_revoked", "gates.action_attempted", "gates.action_executed",
    "gates.action_failed", "gates.run_ended", "gates.alert_rejected", "gates.guardrails_decided",
    "gates.shadow_decided", "gates.autonomy_capped",
}
SECRET_WORDS = re.compile(r"key|secret|password|connectionstring|sas|token", re.IGNORECASE)


def test_no_deployment_output_names_a_secret() -> None:
    outputs = parse(INFRA / "main.bicep")["outputs"]
    assert [name for name in outputs if SECRET_WORDS.search(name.replace("KEY_VAULT", ""))] == []


def test_no_template_lists_keys() -> None:
    for path in bicep_files():
        text = path.read_text()
        assert "listKeys" not in text, path
        assert "listConnectionStrings" not in text, path


def test_service_bus_accepts_only_entra_authentication() -> None:
    assert resource_properties(MODULES / "servicebus.bicep", "namespace")["disableLocalAuth"] is True


def test_application_insights_accepts_only_entra_authenticated_telemetry() -> None:
    assert resource_properties(MODULES / "monitoring.bicep", "appInsights")["DisableLocalAuth"] is True


def test_the_app_storage_account_has_no_shared_key_access() -> None:
    assert resource_properties(MODULES / "storage.bicep", "account")["allowSharedKeyAccess"] is False


def test_key_vault_is_in_rbac_mode_with_purge_protection() -> None:
    properties = resource_properties(MODULES / "keyvault.bicep", "vault")
    assert properties["enableRbacAuthorization"] is True
    assert properties["enablePurgeProtection"] is True


def test_authentication_is_required_everywhere_but_the_alert_intake_and_health() -> None:
    validation = resource_properties(MODULES / "appsettings.bicep", "auth")["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert sorted(validation["excludedPaths"]) == ["/api/alerts", "/api/health"]


def test_the_token_store_is_on_for_the_on_behalf_of_flow() -> None:
    assert resource_properties(MODULES / "appsettings.bicep", "auth")["login"]["tokenStore"]["enabled"] is True


def test_every_role_definition_id_is_a_named_variable() -> None:
    text = (MODULES / "rbac.bicep").read_text()
    assignments = re.findall(r"roleDefinitionId: subscriptionResourceId\('[^']+', ([^)]+)\)", text)
    assert assignments
    assert all(re.fullmatch(r"[a-zA-Z]+RoleId", name) for name in assignments)


def test_the_agent_holds_reader_on_its_targets_by_default() -> None:
    parameter = parse(INFRA / "main.bicep")["parameters"]["targetRoleDefinitionId"]
    assert parameter["default"] == "acdd72a7-3385-48ef-bd42-f606fba81ae7"  # Reader


def test_monitoring_queries_name_only_events_the_app_emits() -> None:
    texts = [(MODULES / "alerts.bicep").read_text(), (INFRA / "workbook" / "gates-workbook.json").read_text()]
    named = {match for text in texts for match in re.findall(r"gates\.[a-z_]+", text)}
    assert named
    assert named <= AUDIT_EVENTS


def test_the_workbook_is_valid_json_with_its_placeholders() -> None:
    text = (INFRA / "workbook" / "gates-workbook.json").read_text()
    workbook = json.loads(text)
    assert workbook["version"] == "Notebook/1.0"
    assert "__APP_INSIGHTS_ID__" in text
    assert "__SERVICEBUS_NAMESPACE_ID__" in text
