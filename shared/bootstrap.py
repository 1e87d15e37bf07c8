"""Build the real adapters from settings. Called once per process, on first use."""

from __future__ import annotations

from azure.data.tables import TableServiceClient
from azure.identity import DefaultAzureCredential
from azure.servicebus import ServiceBusClient

from shared.adapters.arm_client import ArmResourceManager
from shared.adapters.correlation_cache import RememberedCorrelations
from shared.adapters.http_session import transport
from shared.adapters.identity import JwksSigningKeys, MsalTokenBroker, agent_credential_from_settings
from shared.adapters.limit_store import TableLimitStore
from shared.adapters.notifier import AcsEmailNotifier, SmtpNotifier
from shared.adapters.sealing import AesGcmSealer
from shared.adapters.servicebus_bus import ServiceBusMessageBus
from shared.adapters.table_store import (
    TableAlertStatusStore,
    TableCorrelationStore,
    TableRejectedAlertStore,
    TableRunStore,
    TableSwitchStore,
    open_tables,
)
from shared.core.pause import setting_switch
from shared.core.plans import PlanBook
from shared.core.requests import Timeouts
from shared.ports import Notifier
from shared.services import Policy, Services, SystemClock
from shared.settings import Settings
from shared.telemetry import configure
from shared.topology import Table


def build_services(settings: Settings, plans: PlanBook) -> Services:
    azure_credential = None
    if settings.tables.connection_string:
        table_service = TableServiceClient.from_connection_string(settings.tables.connection_string,
                                                                  transport=transport())
    else:
        azure_credential = azure_credential or DefaultAzureCredential()
        table_service = TableServiceClient(str(settings.tables.endpoint), credential=azure_credential,
                                           transport=transport())
    tables = open_tables(table_service)
    if settings.servicebus.connection_string:
        sb_client = ServiceBusClient.from_connection_string(settings.servicebus.connection_string)
    else:
        azure_credential = azure_credential or DefaultAzureCredential()
        sb_client = ServiceBusClient(str(settings.servicebus.endpoint), credential=azure_credential)
    agent = agent_credential_from_settings(
        settings.agent_identity, tenant_id=settings.tenant_id, authority_host=settings.authority_host,
        client_id=settings.agent_client_id, client_secret=settings.agent_client_secret)
    notifier: Notifier
    if settings.email_transport == "smtp":
        notifier = SmtpNotifier(settings.smtp_host, settings.smtp_port, settings.email_sender)
    else:
        azure_credential = azure_credential or DefaultAzureCredential()
        notifier = AcsEmailNotifier(str(settings.acs_endpoint), settings.email_sender, azure_credential)
    authority = f"{settings.authority_host.rstrip('/')}/{settings.tenant_id}"
    started = SystemClock().now()
    services = Services(
        runs=TableRunStore(tables[Table.RUNS], tables[Table.RUN_INDEX]),
        correlations=RememberedCorrelations(TableCorrelationStore(tables[Table.CORRELATIONS]), SystemClock()),
        rejected_alerts=TableRejectedAlertStore(tables[Table.REJECTED_ALERTS]),
        alert_status=TableAlertStatusStore(tables[Table.ALERT_STATUS]),
        limits=TableLimitStore(tables[Table.LIMITS]),
        bus=ServiceBusMessageBus(sb_client),
        arm=ArmResourceManager(settings.arm_endpoint),
        tokens=MsalTokenBroker(authority_host=settings.authority_host, tenant_id=settings.tenant_id,
                               client_id=settings.client_id, client_secret=settings.client_secret, agent=agent),
        notifier=notifier,
        sealer=AesGcmSealer.from_setting(settings.credential_sealing_key),
        switches=TableSwitchStore(tables[Table.KILL_SWITCH]),
        policy=Policy(
            plans=plans,
            ceiling=settings.autonomy_ceiling,
            shadow=settings.shadow_mode,
            timeouts=Timeouts(consent=settings.consent_timeout, credentials=settings.credential_timeout),
            cooldown=settings.correlation_cooldown,
            public_base_url=settings.public_base_url,
            form_key=settings.form_signing_key,
            max_message_bytes=settings.max_message_bytes,
            webhook_audience=settings.alert_webhook_audience,
            issuer=f"{authority}/v2.0",
            api_audiences=(settings.client_id, settings.api_audience or f"api://{settings.client_id}"),
            kill_switch=setting_switch(settings.kill_switch, settings.kill_switch_reason, started),
        ),
        signing_keys=JwksSigningKeys(f"{authority}/discovery/v2.0/keys"),
        audit_sink=configure(settings.appinsights_connection_string, settings.appinsights_authentication),
    )
    return services
