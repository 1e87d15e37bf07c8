// Key Vault in RBAC mode for the app's secrets: the form-signing key, the credential-sealing key, the app
// registration's client secret (set by a person, infra/README.md) and the token store's SAS URL (set by the
// deployment). The app reads them through Key Vault references with its managed identity.
param location string
param tags object
param name string
param tenantId string
param logAnalyticsWorkspaceId string

@description('Object ids (users or groups) who may set secrets: Key Vault Secrets Officer.')
param secretOfficerPrincipalIds array

var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:Key Vault references of an App Service app without virtual network integration come over the public endpoint; access is by Entra RBAC only.
  //checkov:skip=CKV_AZURE_189:Same reason: public network access stays enabled, authorisation is RBAC on the app's identity.
  //checkov:skip=CKV2_AZURE_32:No private endpoint without a virtual network (see infra/README.md "Network").
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource secretOfficers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in secretOfficerPrincipalIds: {
  name: guid(vault.id, principalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    principalId: principalId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    description: 'Sets the SRE Gates secrets (client secret, form-signing key, credential-sealing key).'
  }
}]

// Who read which secret, and who changed one, goes to the same workspace as the app's telemetry.
resource auditLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
