// Log Analytics workspace and a workspace-based Application Insights that accepts Entra-authenticated
// telemetry only (no instrumentation-key ingestion).
param location string
param tags object
param logAnalyticsName string
param appInsightsName string
param retentionInDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      // Readers need a role on the workspace or on the resource they look at, never shared keys.
      disableLocalAuth: true
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Ingestion needs an Entra token (Monitoring Metrics Publisher): the connection string alone is no credential.
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

output logAnalyticsId string = workspace.id
output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
// The connection string carries the instrumentation key, which with DisableLocalAuth is an identifier, not a
// credential; it goes into an app setting, never into a deployment output of main.bicep.
output appInsightsConnectionString string = appInsights.properties.ConnectionString
