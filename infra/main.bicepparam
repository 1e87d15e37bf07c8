// Parameters for infra/main.bicep. Values come from the environment, so the same file serves
// `azd up` (azd env set NAME VALUE) and `az deployment group create` (export NAME=VALUE first).
// Nothing secret goes here: secrets live in Key Vault (infra/README.md).
using './main.bicep'

param environmentName = readEnvironmentVariable('AZURE_ENV_NAME', 'gates')
param location = readEnvironmentVariable('AZURE_LOCATION', 'swedencentral')

// From the app registration (infra/README.md, steps 1 and 2).
param clientId = readEnvironmentVariable('GATES_CLIENT_ID')
param applicationIdUri = readEnvironmentVariable('GATES_APPLICATION_ID_URI', 'api://${readEnvironmentVariable('GATES_CLIENT_ID')}')

// Object id of the person or group who puts the secrets into Key Vault (infra/README.md, step 11). Optional,
// else assign Key Vault Secrets Officer on the vault by hand before setting the secrets (RBAC-mode vault).
param secretOfficerPrincipalIds = empty(readEnvironmentVariable('GATES_SECRET_OFFICER_ID', ''))
  ? []
  : [readEnvironmentVariable('GATES_SECRET_OFFICER_ID', '')]

// Your response plans (infra/README.md, step 7); the default file holds the local runtime's fixtures.
param responsePlansPath = readEnvironmentVariable('GATES_RESPONSE_PLANS', 'config/response-plans.json')
param actionCatalogPath = readEnvironmentVariable('GATES_ACTION_CATALOG', 'config/actions.json')
param autonomyCeiling = readEnvironmentVariable('GATES_AUTONOMY_CEILING', 'review')
param killSwitch = readEnvironmentVariable('GATES_KILL_SWITCH', 'off')
param killSwitchReason = readEnvironmentVariable('GATES_KILL_SWITCH_REASON', '')
param shadowMode = toLower(readEnvironmentVariable('GATES_SHADOW_MODE', 'false')) == 'true'
param alertWebhookAudience = readEnvironmentVariable('GATES_ALERT_WEBHOOK_AUDIENCE', '')

// Where the agent holds Reader on its own: one resource group from GATES_TARGET_RESOURCE_GROUP (in
// GATES_TARGET_SUBSCRIPTION_ID, else AZURE_SUBSCRIPTION_ID, else the deployment's subscription). For more
// resource groups, replace this with a literal list; for whole subscriptions, set targetSubscriptionIds.
param targetResourceGroups = empty(readEnvironmentVariable('GATES_TARGET_RESOURCE_GROUP', ''))
  ? []
  : [
      {
        subscriptionId: readEnvironmentVariable('GATES_TARGET_SUBSCRIPTION_ID', readEnvironmentVariable('AZURE_SUBSCRIPTION_ID', ''))
        resourceGroup: readEnvironmentVariable('GATES_TARGET_RESOURCE_GROUP', '')
      }
    ]

param oncallEmails = empty(readEnvironmentVariable('GATES_ONCALL_EMAIL', ''))
  ? []
  : [readEnvironmentVariable('GATES_ONCALL_EMAIL', '')]
