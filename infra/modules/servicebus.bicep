// The Service Bus namespace and every queue that chains the functions. Entra authentication only.
param location string
param tags object
param name string

@description('Queues with their properties, as in shared/topology.py QUEUE_PROPERTIES.')
param queues array

@description('Standard is the smallest tier with duplicate detection and scheduled messages (the deadlines queue).')
@allowed(['Standard', 'Premium'])
param sku string = 'Standard'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    tier: sku
  }
  properties: {
    // No SAS keys: senders and receivers authenticate with Entra (Data Sender / Data Receiver roles).
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource appQueues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [for queue in queues: {
  parent: namespace
  name: queue.name
  properties: {
    maxDeliveryCount: queue.maxDeliveryCount
    lockDuration: queue.lockDuration
    requiresDuplicateDetection: queue.requiresDuplicateDetection
    duplicateDetectionHistoryTimeWindow: queue.duplicateDetectionHistoryTimeWindow
    deadLetteringOnMessageExpiration: queue.deadLetteringOnMessageExpiration
    // Every handler is idempotent and keyed by run; sessions would only serialise unrelated runs.
    requiresSession: false
    enablePartitioning: false
    maxSizeInMegabytes: 1024
  }
}]

output name string = namespace.name
output id string = namespace.id
// serviceBusEndpoint is https://<name>.servicebus.windows.net:443/ (or another cloud's suffix): keep the host.
output hostName string = split(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]
// The tier's message size limit, which the app's intake sizes alerts by (GATES_SERVICE_BUS_MAX_MESSAGE_BYTES):
// 256 KB on Standard; 1 MB on Premium unless an entity's maxMessageSizeInKilobytes raises it.
output maxMessageBytes int = sku == 'Premium' ? 1048576 : 262144
