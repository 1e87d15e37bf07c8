// The app's storage account: its tables (shared/topology.py Table), the Functions host's own blobs
// (AzureWebJobsStorage) and the Flex Consumption deployment package. Identity-based access only.
param location string
param tags object
param name string
param tables array
param deploymentContainerName string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35:No virtual network in this deployment (infra/README.md "Network"): Flex Consumption reaches storage over the public endpoint. Shared keys are off; every caller needs an Entra role.
  //checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: public endpoint, Entra-only authorisation, no anonymous blob access.
  //checkov:skip=CKV_AZURE_206:Zone-redundant (ZRS) is the replication chosen: it survives a zone outage without paying for a second region; choose GZRS for regional failover.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    // Zone-redundant: the runs table is the system of record for approvals and the audit trail.
    name: 'Standard_ZRS'
  }
  properties: {
    accessTier: 'Hot'
    // Every reader and writer (the host, the app, the deployment) uses its managed identity.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // Flex Consumption without a virtual network reaches storage over its public endpoint.
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
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource appTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for table in tables: {
  parent: tableService
  name: table
}]

output name string = account.name
output id string = account.id
output tableServiceUri string = account.properties.primaryEndpoints.table
output blobServiceUri string = account.properties.primaryEndpoints.blob
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainerName}'
