// The agent's standing role on one resource group it may act on (deployed at that resource group's scope).
// Reader by default: anything more is asked of a person through the credential gate.
param principalId string
param roleDefinitionId string

resource agentAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleDefinitionId)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    description: 'SRE Gates agent: standing access; everything else goes through the credential gate.'
  }
}
