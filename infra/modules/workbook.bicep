// The on-call workbook (infra/workbook/gates-workbook.json): runs by state, time to consent and to execution,
// pending requests and their age, failures and dead-letters. See infra/README.md "The workbook".
param location string
param tags object
param environmentName string
param appInsightsId string
param serviceBusNamespaceId string

var content = replace(replace(loadTextContent('../workbook/gates-workbook.json'), '__APP_INSIGHTS_ID__', appInsightsId),
  '__SERVICEBUS_NAMESPACE_ID__', serviceBusNamespaceId)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; stable per deployment so redeploying updates it.
  name: guid(resourceGroup().id, environmentName, 'sre-gates-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'SRE Gates (${environmentName})'
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: content
    version: 'Notebook/1.0'
  }
}

output id string = workbook.id
