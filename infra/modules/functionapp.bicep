// The Function App on a Flex Consumption plan (Linux, Python 3.11) with a system-assigned managed identity.
// App settings and authentication are set by appsettings.bicep, after the identity has its roles.
param location string
param tags object
param planName string
param name string

@description('Blob container URL that holds the deployment package (identity-based, no connection string).')
param deploymentContainerUrl string

param maximumInstanceCount int

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225:Flex Consumption runs instances on demand; zone redundancy is a regional option of the plan left to the operator (infra/README.md).
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_213:Flex Consumption scales per function from zero; /api/health is for probes from outside (availability tests), not the platform's health check.
  //checkov:skip=CKV_AZURE_222:Approvers (browsers, behind App Service Authentication) and action groups reach the app over the internet.
  //checkov:skip=CKV_AZURE_17:Client certificates are not how approvers sign in; App Service Authentication (Entra ID) guards every route but the alert intake, which uses a function key.
  //checkov:skip=CKV_AZURE_88:Flex Consumption has no Azure Files content share; there is nothing to mount.
  //checkov:skip=CKV_AZURE_212:Flex Consumption scales per function from zero; a minimum instance count is an always-ready setting, left to the operator.
  //checkov:skip=CKV_AZURE_221:No private endpoint without a virtual network (see infra/README.md "Network"); approvers and action groups reach the app over the internet.
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Deployment goes through the identity-based package container; basic-auth publishing stays off.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output principalId string = site.identity.principalId
output defaultHostName string = site.properties.defaultHostName
