// The token store of App Service Authentication: the signed-in approver's tokens, which the app reads
// (X-MS-TOKEN-AAD-ACCESS-TOKEN) as the user assertion of the on-behalf-of exchange. Flex Consumption has no
// shared file system for the default store, so the store is a blob container reached through a SAS URL; a
// service SAS needs the account key, so this small account, and only this one, keeps shared-key access.
// The SAS goes straight into Key Vault; the app setting that names it is a Key Vault reference.
param location string
param tags object
param name string
param keyVaultName string

@description('Expiry of the SAS (ISO 8601). Redeploying issues a new one.')
param sasExpiry string

var containerName = 'tokens'
var secretName = 'gates-auth-token-store-sas-url'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35:The token store is reached by App Service Authentication over the public endpoint, with a SAS for one container.
  //checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35; anonymous blob access is off.
  //checkov:skip=CKV_AZURE_206:Sign-in sessions only: losing them means people sign in again. LRS is enough.
  //checkov:skip=CKV2_AZURE_40:App Service Authentication's token store accepts only a SAS URL; a service SAS is signed with the account key. This account holds nothing else.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}

// Read, add, create, write, delete, list on this one container, over HTTPS, until sasExpiry.
var sas = account.listServiceSas('2023-05-01', {
  canonicalizedResource: '/blob/${account.name}/${containerName}'
  signedResource: 'c'
  signedPermission: 'racwdl'
  signedProtocol: 'https'
  signedExpiry: sasExpiry
}).serviceSasToken

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource sasSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretName
  properties: {
    value: '${account.properties.primaryEndpoints.blob}${containerName}?${sas}'
    contentType: 'SAS URL of the App Service Authentication token store'
    attributes: {
      exp: dateTimeToEpoch(sasExpiry)
    }
  }
  dependsOn: [container]
}

// The secret's address only (no version: the reference follows the newest SAS after a redeployment).
output sasSecretUri string = '${vault.properties.vaultUri}secrets/${secretName}'
