import { api } from "./api.js";
import { EC2_STATE_CHANGE_PATTERN } from "./ec2-event-pattern.js";
import { lambdaDefaults, lambdaEnvironment, permissionTargets } from "./lambda.js";
import { EC2_EVENT_ACTIONS, statementsFor } from "./permissions.js";

// An event this old is older news than the next scheduled sweep, which acts on the truth anyway.
const MAX_EVENT_AGE_SECONDS = 300;

/**
 * The EC2-event function (functions/ec2-events.ts): runs the instance an event names through the
 * sweep's readiness, liveness and power rules, so a crash is offline within seconds instead of at
 * the next minute's sweep. Idempotent by construction (the running check decides, transitions
 * are conditional), so EventBridge's and Lambda's duplicates and retries are harmless.
 */
export const ec2Events = new sst.aws.Function("Ec2Events", {
  ...lambdaDefaults,
  handler: "functions/ec2-events.handler",
  // The handler gives its work 3 s less than this (lib/deadline.ts), so no call outlives it.
  timeout: "30 seconds",
  memory: "512 MB",
  // A failed invocation (the database unreachable) is tried twice more by Lambda, a minute apart
  // (lambda/latest/dg/invocation-async-error-handling.html), never past the age above.
  retries: 2,
  transform: {
    ...lambdaDefaults.transform,
    eventInvokeConfig: { maximumEventAgeInSeconds: MAX_EVENT_AGE_SECONDS },
  },
  environment: lambdaEnvironment(api.url),
  permissions: statementsFor(EC2_EVENT_ACTIONS, permissionTargets),
});

/** The rule on the default bus, where AWS services send their events (eb-events.html). */
export const ec2StateChangeRule = new aws.cloudwatch.EventRule("Ec2StateChangeRule", {
  description: "EC2 instance state changes, for the workspace control plane's EC2-event function",
  eventPattern: JSON.stringify(EC2_STATE_CHANGE_PATTERN),
});

new aws.cloudwatch.EventTarget("Ec2StateChangeTarget", {
  rule: ec2StateChangeRule.name,
  arn: ec2Events.arn,
  // EventBridge retries a failed hand-over for 24 hours and 185 times by default
  // (eventbridge/latest/userguide/eb-rule-retry-policy.html); past the age above it is stale.
  retryPolicy: { maximumEventAgeInSeconds: MAX_EVENT_AGE_SECONDS, maximumRetryAttempts: 185 },
});

// EventBridge invokes the function under its resource policy, for this rule only.
new aws.lambda.Permission("Ec2StateChangeInvoke", {
  action: "lambda:InvokeFunction",
  function: ec2Events.name,
  principal: "events.amazonaws.com",
  sourceArn: ec2StateChangeRule.arn,
});
