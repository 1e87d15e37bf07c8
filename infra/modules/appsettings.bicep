// The Function App's settings (shared/topology.py SETTINGS, identity-based connections, secrets as Key Vault
// references) and App Service Authentication in front of the approval and status routes.
param functionAppName string
param tenantId string
param clientId string
param applicationIdUri string
param storageAccountName string
param tableServiceUri string
param serviceBusHostName string
param keyVaultUri string
param clientSecretName string
param formSigningKeySecretName string
param credentialSealingKeySecretName string
param tokenStoreSasSecretUri string
param appInsightsConnectionString string
param publicBaseUrl string
param acsEndpoint string
param emailSender string
param responsePlansPath string
param actionCatalogPath string
param autonomyCeiling string
param killSwitch string = 'off'
param killSwitchReason string = ''
@description('GATES_SHADOW_MODE: every plan in shadow mode (decisions recorded, nothing acts, no one asked).')
param shadowMode bool = false
param consentTimeoutMinutes int
param credentialTimeoutMinutes int
param correlationCooldownMinutes int
param alertWebhookAudience string
@description('The Service Bus tier\'s message size limit in bytes: the intake refuses alerts too large to queue.')
param serviceBusMaxMessageBytes int = 262144

// Versionless references: rotating a secret in Key Vault reaches the app without a redeployment.
var clientSecretReference = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${clientSecretName}/)'
var formSigningKeyReference = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${formSigningKeySecretName}/)'
var credentialSealingKeyReference = '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${credentialSealingKeySecretName}/)'
var tokenStoreSasReference = '@Microsoft.KeyVault(SecretUri=${tokenStoreSasSecretUri}/)'

// App Service Authentication reads the client secret and the token store's SAS URL from these settings.
var authClientSecretSettingName = 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET'
var tokenStoreSasSettingName = 'AUTH_TOKEN_STORE_SAS_URL'

// environment() keeps the template right in sovereign clouds; the app wants both without a trailing slash.
var loginEndpoint = environment().authentication.loginEndpoint
var resourceManager = environment().resourceManager
var authorityHost = endsWith(loginEndpoint, '/') ? substring(loginEndpoint, 0, length(loginEndpoint) - 1) : loginEndpoint
var armEndpoint = endsWith(resourceManager, '/') ? substring(resourceManager, 0, length(resourceManager) - 1) : resourceManager

var appSettings = {
  // Functions host: identity-based AzureWebJobsStorage (blob only; Flex Consumption sets runtime and version
  // from functionAppConfig, so FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION are not set).
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  // Telemetry: the host and the app authenticate to Application Insights with the managed identity.
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
  // Identity-based connections: the Service Bus triggers and the app's own clients.
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusHostName
  TablesConnection__tableServiceUri: tableServiceUri
  // shared/topology.py SETTINGS.
  GATES_TENANT_ID: tenantId
  GATES_AUTHORITY_HOST: authorityHost
  GATES_CLIENT_ID: clientId
  GATES_CLIENT_SECRET: clientSecretReference
  GATES_AGENT_IDENTITY: 'managed_identity'
  GATES_AGENT_CLIENT_ID: '' // empty: the system-assigned identity
  GATES_ARM_ENDPOINT: armEndpoint
  GATES_PUBLIC_BASE_URL: publicBaseUrl
  GATES_FORM_SIGNING_KEY: formSigningKeyReference
  GATES_CREDENTIAL_SEALING_KEY: credentialSealingKeyReference
  GATES_ACTION_CATALOG: actionCatalogPath
  GATES_RESPONSE_PLANS: responsePlansPath
  GATES_AUTONOMY_CEILING: autonomyCeiling
  GATES_KILL_SWITCH: killSwitch
  GATES_KILL_SWITCH_REASON: killSwitchReason
  GATES_SHADOW_MODE: shadowMode ? 'true' : 'false'
  GATES_CORRELATION_COOLDOWN_MINUTES: string(correlationCooldownMinutes)
  GATES_CONSENT_TIMEOUT_MINUTES: string(consentTimeoutMinutes)
  GATES_CREDENTIAL_TIMEOUT_MINUTES: string(credentialTimeoutMinutes)
  GATES_EMAIL_TRANSPORT: 'acs'
  GATES_EMAIL_SENDER: emailSender
  GATES_ACS_ENDPOINT: acsEndpoint
  GATES_ALERT_WEBHOOK_AUDIENCE: alertWebhookAudience
  GATES_SERVICE_BUS_MAX_MESSAGE_BYTES: string(serviceBusMaxMessageBytes)
  // Agents call the plan API and the MCP tools with tokens for this API (app role Gates.Agent).
  GATES_API_AUDIENCE: applicationIdUri
  // App Service Authentication.
  MICROSOFT_PROVIDER_AUTHENTICATION_SECRET: clientSecretReference
  AUTH_TOKEN_STORE_SAS_URL: tokenStoreSasReference
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_63:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_65:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_66:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_80:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_88:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_222:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  parent: site
  name: 'appsettings'
  properties: appSettings
}

// Every route needs a signed-in person except the alert intake (function key, and optionally an action
// group's Entra token) and the health probe. Browsers are sent to sign in; API callers bring a bearer token
// for the app's own API. The token store keeps the approver's access token for the on-behalf-of exchange.
resource auth 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_63:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_65:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_66:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_80:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_88:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  //checkov:skip=CKV_AZURE_222:checkov reads a Microsoft.Web/sites/config child as a whole site; the site is in functionapp.bicep.
  parent: site
  name: 'authsettingsV2'
  dependsOn: [settings]
  properties: {
    platform: {
      enabled: true
      runtimeVersion: '~1'
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'RedirectToLoginPage'
      redirectToProvider: 'azureactivedirectory'
      excludedPaths: [
        '/api/alerts'
        '/api/health'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenantId}/v2.0'
          clientId: clientId
          clientSecretSettingName: authClientSecretSettingName
        }
        login: {
          // The access token in the store must be for this app's API, so that it can be the user assertion
          // of the on-behalf-of exchange; offline_access lets the store refresh it.
          loginParameters: [
            'scope=openid profile email offline_access ${applicationIdUri}/user_impersonation'
          ]
        }
        validation: {
          allowedAudiences: [
            applicationIdUri
            clientId
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: true
        // Approval links can be opened hours later; the store refreshes the session up to this long.
        tokenRefreshExtensionHours: 72
        azureBlobStorage: {
          sasUrlSettingName: tokenStoreSasSettingName
        }
      }
      preserveUrlFragmentsForLogins: false
      nonce: {
        validateNonce: true
      }
    }
    httpSettings: {
      requireHttps: true
      forwardProxy: {
        convention: 'NoProxy'
      }
      routes: {
        apiPrefix: '/.auth'
      }
    }
  }
}
