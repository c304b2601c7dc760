// Pure data, so tests read the same pattern the rule is made with (infra/ec2-events.ts).

/**
 * What the rule matches: every EC2 instance state change in the account and region
 * (docs.aws.amazon.com/AWSEC2/latest/UserGuide/monitoring-instance-state-changes.html). It cannot
 * be narrowed to this deployment: an event pattern matches fields of the event ("Event patterns
 * have the same structure as the events they match", docs.aws.amazon.com/eventbridge/latest/
 * userguide/eb-event-patterns.html), and the event's detail holds only `instance-id` and `state`,
 * no tags. The function filters instead: an instance no workspace of this deployment owns costs
 * one query and no AWS call (lib/ec2events/reconcile.ts). Every state is wanted: `pending` and
 * `running` adopt a lost launch and bring readiness forward, the others take a crash offline.
 */
export const EC2_STATE_CHANGE_PATTERN = {
  source: ["aws.ec2"],
  "detail-type": ["EC2 Instance State-change Notification"],
};
