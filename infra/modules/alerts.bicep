// Alert rules for the on-call team: dead-lettered messages, approval requests left open past their deadline,
// and failed runs. KQL runs against the app's custom events (`gates.<event>`) in Application Insights.
param location string
param tags object
param environmentName string
param appInsightsId string
param serviceBusNamespaceId string

@description('E-mail addresses of the on-call team. Empty: the rules fire (visible in the portal) with no action group.')
param oncallEmails array

var actionGroups = empty(oncallEmails) ? [] : [actionGroup.id]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(oncallEmails)) {
  name: 'ag-gates-${environmentName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: take('gates${environmentName}', 12)
    enabled: true
    emailReceivers: [for (address, i) in oncallEmails: {
      name: 'oncall-${i}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
  }
}

// A dead-lettered message is a run that stopped moving (or an alert that could not be read): always look.
resource deadLetters 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'gates-${environmentName}-dead-lettered-messages'
  location: 'global'
  tags: tags
  properties: {
    description: 'Messages in a dead-letter queue of the SRE Gates namespace. Inspect them with Service Bus Explorer; the dead-letter reason says why.'
    severity: 2
    enabled: true
    scopes: [
      serviceBusNamespaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dead-lettered'
          metricNamespace: 'Microsoft.ServiceBus/namespaces'
          metricName: 'DeadletteredMessages'
          dimensions: [
            {
              name: 'EntityName'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Maximum'
        }
      ]
    }
    actions: [for id in actionGroups: {
      actionGroupId: id
    }]
  }
}

// A consent or credential request whose deadline passed with no decision and no expiry: the deadlines
// queue did not do its work (the run is stuck; no action was taken).
var overdueRequestsQuery = '''
let decided = customEvents
    | where name in ("gates.consent_granted", "gates.consent_denied", "gates.consent_expired",
                     "gates.credential_granted", "gates.credential_denied", "gates.credential_expired")
    | distinct request_id = tostring(customDimensions.request_id);
let ended = customEvents
    | where name == "gates.run_ended"
    | distinct run_id = tostring(customDimensions.run_id);
customEvents
| where name in ("gates.consent_requested", "gates.credential_requested")
| extend request_id = tostring(customDimensions.request_id), run_id = tostring(customDimensions.run_id),
         deadline = todatetime(customDimensions.deadline)
| join kind=leftanti decided on request_id
| join kind=leftanti ended on run_id
| where deadline < ago(5m)
| project timestamp, name, run_id, request_id, deadline, overdue_minutes = datetime_diff("minute", now(), deadline)
'''

resource overdueRequests 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'gates-${environmentName}-requests-past-deadline'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'SRE Gates: approval requests open past their deadline'
    description: 'A consent or credential request passed its deadline without a decision or an expiry. Check the deadlines queue and its dead letters.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    // Requests can be open for hours; look back two days for the ones that were never settled.
    overrideQueryTimeRange: 'P2D'
    criteria: {
      allOf: [
        {
          query: overdueRequestsQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

// A run that ended failed, or an action that failed: someone should read the run's audit trail.
var failedRunsQuery = '''
customEvents
| where name == "gates.action_failed"
    or (name == "gates.run_ended" and tostring(customDimensions.outcome) == "failed")
| project timestamp, name, run_id = tostring(customDimensions.run_id), step = tostring(customDimensions.step),
          stage = tostring(customDimensions.stage), status = tostring(customDimensions.status),
          code = tostring(customDimensions.code)
'''

resource failedRuns 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'gates-${environmentName}-failed-runs'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'SRE Gates: failed runs'
    description: 'A run ended failed or an action failed. Read the run at /api/runs/<run_id> or in the workbook.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: failedRunsQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: actionGroups
    }
  }
}

// An alert that could not be read never became a run: alerting or its action group is misconfigured.
// The app keeps it, with the reason, in the `rejectedalerts` table (GET /api/rejected-alerts).
var rejectedAlertsQuery = '''
customEvents
| where name == "gates.alert_rejected"
| project timestamp, message_id = tostring(customDimensions.message_id), reason = tostring(customDimensions.reason)
'''

resource rejectedAlerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'gates-${environmentName}-rejected-alerts'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'SRE Gates: alerts that could not be read'
    description: 'An alert on the alerts queue was not a readable Azure Monitor common-schema alert; no run was started. Read the reason at /api/rejected-alerts.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: rejectedAlertsQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: actionGroups
    }
  }
}
