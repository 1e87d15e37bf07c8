// The agent's standing role on a whole subscription (deployed at that subscription's scope).
// Reader by default: anything more is asked of a person through the credential gate.
targetScope = 'subscription'

param principalId string
param roleDefinitionId string

resource agentAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionId)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    description: 'SRE Gates agent: standing access; everything else goes through the credential gate.'
  }
}
