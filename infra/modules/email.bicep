// Azure Communication Services Email: the e-mail service, its domain, the sender, and the Communication
// Services resource the app sends through (GATES_ACS_ENDPOINT, with its managed identity).
param tags object
param emailServiceName string
param communicationServiceName string
param senderDisplayName string

@description('Your own domain (verified by its DNS records before it can be linked; main.bicep does not pass one yet, infra/README.md "Not verified here"), or empty for an Azure-managed domain.')
param customDomainName string = ''

@description('Where ACS keeps its data at rest.')
param dataLocation string = 'United States'

var useCustomDomain = !empty(customDomainName)

resource emailService 'Microsoft.Communication/emailServices@2023-04-01' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource domain 'Microsoft.Communication/emailServices/domains@2023-04-01' = {
  parent: emailService
  name: useCustomDomain ? customDomainName : 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: useCustomDomain ? 'CustomerManaged' : 'AzureManaged'
    // Approval links must reach the approver unchanged: no click tracking rewrites them.
    userEngagementTracking: 'Disabled'
  }
}

// An Azure-managed domain has one sender, DoNotReply; a custom domain gets a named sender.
resource sender 'Microsoft.Communication/emailServices/domains/senderUsernames@2023-04-01' = if (useCustomDomain) {
  parent: domain
  name: 'sre-gates'
  properties: {
    username: 'sre-gates'
    displayName: senderDisplayName
  }
}

resource communication 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: communicationServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    linkedDomains: [
      domain.id
    ]
  }
}

output communicationServiceName string = communication.name
output endpoint string = 'https://${communication.properties.hostName}'
output senderAddress string = '${useCustomDomain ? 'sre-gates' : 'DoNotReply'}@${domain.properties.mailFromSenderDomain}'
