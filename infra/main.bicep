// SRE Gates: everything the function app needs in Azure, in one resource group.
// Deploy with `azd up` (azure.yaml) or `az deployment group create` (see infra/README.md).
// The queues, tables and app settings below mirror shared/topology.py; tests/infra holds them together.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(20)
@description('Short environment name (azd environment); part of every resource name.')
param environmentName string

@description('Region of every regional resource. Must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

// --- The app registration (created by hand, infra/README.md "Setting it up, in order", steps 1-6) ----------

@description('Entra tenant of the app registration (GATES_TENANT_ID).')
param tenantId string = tenant().tenantId

@description('Application (client) id of the app registration (GATES_CLIENT_ID, App Service Authentication client).')
param clientId string

@description('Application ID URI of the app registration, e.g. api://<client id>. Audience of the users\' tokens.')
param applicationIdUri string = 'api://${clientId}'

// --- Secrets: names of Key Vault secrets a person sets (never their values) --------------------------------

@description('Key Vault secret holding the app registration\'s client secret (GATES_CLIENT_SECRET and App Service Authentication).')
param clientSecretName string = 'gates-client-secret'

@description('Key Vault secret holding the HMAC key that signs decision-form tokens (approval links carry nothing secret) (GATES_FORM_SIGNING_KEY).')
param formSigningKeySecretName string = 'gates-form-signing-key'

@description('Key Vault secret holding the AES key that seals a granted user assertion (GATES_CREDENTIAL_SEALING_KEY).')
param credentialSealingKeySecretName string = 'gates-credential-sealing-key'

@description('Object ids of the people or groups who may set the secrets above (Key Vault Secrets Officer). Optional.')
param secretOfficerPrincipalIds array = []

// --- Behaviour -----------------------------------------------------------------------------------------

@allowed(['review', 'autonomous'])
@description('GATES_RESPONSE_PLANS: the response plans file, relative to the deployed app. config/response-plans.json holds the local runtime\'s fixture people and subscriptions; deploy your own file next to it.')
param responsePlansPath string = 'config/response-plans.json'

@description('GATES_ACTION_CATALOG: the action catalog (what runbooks may ask ARM to do), relative to the deployed app; validated at start-up before the plans.')
param actionCatalogPath string = 'config/actions.json'

@description('GATES_AUTONOMY_CEILING: `review` caps every plan at review; `autonomous` lets response plans run alone.')
param autonomyCeiling string = 'review'

@allowed(['off', 'on'])
@description('GATES_KILL_SWITCH: `on` stops every new ARM call (runs pause) until it is turned off again; changing it restarts the app. POST /api/kill-switch (a Gates.Admin) cannot lift it.')
param killSwitch string = 'off'

@description('GATES_KILL_SWITCH_REASON: why GATES_KILL_SWITCH is on; shown on every paused run and in the audit.')
param killSwitchReason string = ''
@description('GATES_SHADOW_MODE: `true` runs every plan in shadow mode: decisions are recorded, nothing acts, no one is asked (see README, "Shadow mode").')
param shadowMode bool = false

@description('GATES_CONSENT_TIMEOUT_MINUTES: how long a consent request stays open.')
param consentTimeoutMinutes int = 30

@description('GATES_CREDENTIAL_TIMEOUT_MINUTES: how long a credential request stays open.')
param credentialTimeoutMinutes int = 15

@description('GATES_CORRELATION_COOLDOWN_MINUTES: alerts for the same rule and resource within this time join the open run.')
param correlationCooldownMinutes int = 180

@description('GATES_ALERT_WEBHOOK_AUDIENCE: when set, /api/alerts also requires an Entra token with this audience (action group secure webhook).')
param alertWebhookAudience string = ''

@description('Display name of the notification e-mails\' sender.')
param emailSenderDisplayName string = 'SRE Gates'

// --- What the agent may do on its own ----------------------------------------------------------------------

@description('Resource groups on which the agent\'s own identity gets `targetRoleDefinitionId`: [{ subscriptionId, resourceGroup }]. Empty with targetSubscriptionIds empty: no standing access, every action needs a person\'s credentials.')
param targetResourceGroups array = []

@description('Subscriptions (ids) on which the agent\'s own identity gets `targetRoleDefinitionId`.')
param targetSubscriptionIds array = []

@description('Role the agent holds on each target scope. Reader by default: elevation exists for everything else.')
param targetRoleDefinitionId string = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'

// --- Monitoring ---------------------------------------------------------------------------------------------

@description('E-mail addresses of the on-call team for the alert rules. Empty: rules fire with no action group.')
param oncallEmails array = []

@description('Log Analytics retention in days (audit events live here too).')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('Flex Consumption: highest number of instances.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Tags on every resource.')
param tags object = {}

@description('Expiry of the token store\'s SAS (redeploying renews it). Defaults to 180 days from the deployment.')
param tokenStoreSasExpiry string = dateTimeAdd(utcNow(), 'P180D')

// Names: short, unique per resource group and environment, valid for every resource type (storage: 3-24 lowercase).
var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var names = {
  logAnalytics: 'log-gates-${environmentName}-${token}'
  appInsights: 'appi-gates-${environmentName}-${token}'
  storage: take('stgates${token}', 24)
  tokenStore: take('sttok${token}', 24)
  serviceBus: 'sb-gates-${environmentName}-${token}'
  keyVault: take('kv-gates-${token}', 24)
  emailService: 'ecs-gates-${environmentName}-${token}'
  communication: 'acs-gates-${environmentName}-${token}'
  plan: 'plan-gates-${environmentName}-${token}'
  functionApp: 'func-gates-${environmentName}-${token}'
}
var allTags = union(tags, { 'azd-env-name': environmentName, application: 'sre-gates' })

// shared/topology.py QUEUE_PROPERTIES: every queue, with the properties the app relies on.
// ATTEMPT and EXECUTION hold the lock for 5 minutes: ARM calls and their long-running operations run inside them.
var queues = [
  {
    name: 'alerts'
    maxDeliveryCount: 10
    lockDuration: 'PT1M'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    deadLetteringOnMessageExpiration: true
  }
  {
    name: 'consent'
    maxDeliveryCount: 10
    lockDuration: 'PT1M'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    deadLetteringOnMessageExpiration: true
  }
  {
    name: 'attempt'
    maxDeliveryCount: 10
    lockDuration: 'PT5M'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    deadLetteringOnMessageExpiration: true
  }
  {
    name: 'elevation'
    maxDeliveryCount: 10
    lockDuration: 'PT1M'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    deadLetteringOnMessageExpiration: true
  }
  {
    name: 'execution'
    maxDeliveryCount: 10
    lockDuration: 'PT5M'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    deadLetteringOnMessageExpiration: true
  }
  {
    name: 'deadlines'
    maxDeliveryCount: 10
    lockDuration: 'PT1M'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    deadLetteringOnMessageExpiration: true
  }
  {
    name: 'notifications'
    maxDeliveryCount: 10
    lockDuration: 'PT1M'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    deadLetteringOnMessageExpiration: true
  }
]

// shared/topology.py Table.
var tables = [
  'runs'
  'runindex'
  'correlations'
  'rejectedalerts'
  'alertstatus'
  'limits'
  'killswitch'
]

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: allTags
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    retentionInDays: logRetentionDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: allTags
    name: names.storage
    tables: tables
    deploymentContainerName: 'app-package'
  }
}

module tokenStore 'modules/token-store.bicep' = {
  name: 'token-store'
  params: {
    location: location
    tags: allTags
    name: names.tokenStore
    keyVaultName: keyVault.outputs.name
    sasExpiry: tokenStoreSasExpiry
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    location: location
    tags: allTags
    name: names.serviceBus
    queues: queues
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: allTags
    name: names.keyVault
    tenantId: subscription().tenantId
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
    secretOfficerPrincipalIds: secretOfficerPrincipalIds
  }
}

module email 'modules/email.bicep' = {
  name: 'email'
  params: {
    tags: allTags
    emailServiceName: names.emailService
    communicationServiceName: names.communication
    senderDisplayName: emailSenderDisplayName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: allTags
    planName: names.plan
    name: names.functionApp
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    maximumInstanceCount: maximumInstanceCount
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: functionApp.outputs.principalId
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    communicationServiceName: email.outputs.communicationServiceName
  }
}

// The agent's standing access, on scopes outside this resource group: one module per scope.
// An entry without a subscriptionId means the deployment's own subscription (main.bicepparam leaves it empty
// when neither GATES_TARGET_SUBSCRIPTION_ID nor AZURE_SUBSCRIPTION_ID is set, as with the plain Azure CLI).
module targetResourceGroupAccess 'modules/target-access-rg.bicep' = [for (target, i) in targetResourceGroups: {
  name: 'target-access-rg-${i}'
  scope: resourceGroup(empty(target.subscriptionId) ? subscription().subscriptionId : target.subscriptionId, target.resourceGroup)
  params: {
    principalId: functionApp.outputs.principalId
    roleDefinitionId: targetRoleDefinitionId
  }
}]

module targetSubscriptionAccess 'modules/target-access-subscription.bicep' = [for (subscriptionId, i) in targetSubscriptionIds: {
  name: 'target-access-sub-${i}'
  scope: subscription(subscriptionId)
  params: {
    principalId: functionApp.outputs.principalId
    roleDefinitionId: targetRoleDefinitionId
  }
}]

// App settings and authentication come after the role assignments, so that the first start of the host can
// already read its storage, its queues and its Key Vault references.
module appConfig 'modules/appsettings.bicep' = {
  name: 'appsettings'
  dependsOn: [rbac]
  params: {
    functionAppName: functionApp.outputs.name
    tenantId: tenantId
    clientId: clientId
    applicationIdUri: applicationIdUri
    storageAccountName: storage.outputs.name
    tableServiceUri: storage.outputs.tableServiceUri
    serviceBusHostName: serviceBus.outputs.hostName
    keyVaultUri: keyVault.outputs.uri
    clientSecretName: clientSecretName
    formSigningKeySecretName: formSigningKeySecretName
    credentialSealingKeySecretName: credentialSealingKeySecretName
    tokenStoreSasSecretUri: tokenStore.outputs.sasSecretUri
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    publicBaseUrl: 'https://${functionApp.outputs.defaultHostName}'
    acsEndpoint: email.outputs.endpoint
    emailSender: email.outputs.senderAddress
    responsePlansPath: responsePlansPath
    actionCatalogPath: actionCatalogPath
    autonomyCeiling: autonomyCeiling
    killSwitch: killSwitch
    killSwitchReason: killSwitchReason
    shadowMode: shadowMode
    consentTimeoutMinutes: consentTimeoutMinutes
    credentialTimeoutMinutes: credentialTimeoutMinutes
    correlationCooldownMinutes: correlationCooldownMinutes
    alertWebhookAudience: alertWebhookAudience
    serviceBusMaxMessageBytes: serviceBus.outputs.maxMessageBytes
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: allTags
    environmentName: environmentName
    appInsightsId: monitoring.outputs.appInsightsId
    serviceBusNamespaceId: serviceBus.outputs.id
    oncallEmails: oncallEmails
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: allTags
    environmentName: environmentName
    appInsightsId: monitoring.outputs.appInsightsId
    serviceBusNamespaceId: serviceBus.outputs.id
  }
}

// Outputs: names and addresses only. No key, no connection string with a key, no secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenantId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = 'https://${functionApp.outputs.defaultHostName}'
output AUTH_REDIRECT_URI string = 'https://${functionApp.outputs.defaultHostName}/.auth/login/aad/callback'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output AZURE_SERVICEBUS_NAMESPACE string = serviceBus.outputs.hostName
output AZURE_TABLE_SERVICE_URI string = storage.outputs.tableServiceUri
output AZURE_FUNCTION_PRINCIPAL_ID string = functionApp.outputs.principalId
output GATES_EMAIL_SENDER string = email.outputs.senderAddress
output WORKBOOK_ID string = workbook.outputs.id
