import { z } from "zod";

/** The detail-type EC2 gives its instance state changes on EventBridge. */
export const STATE_CHANGE_DETAIL_TYPE = "EC2 Instance State-change Notification";

/**
 * An `EC2 Instance State-change Notification` as EventBridge delivers it to a target
 * (docs.aws.amazon.com/AWSEC2/latest/UserGuide/monitoring-instance-state-changes.html):
 * the envelope (`id`, `detail-type`, `source: "aws.ec2"`, `account`, `time`, `region`,
 * `resources` with the instance's ARN) and a `detail` of only `instance-id` and `state` — no tags,
 * no launch time, no reason. Unknown fields are kept out of the result but do not fail it, as AWS
 * adds envelope fields (`version`) over time.
 *
 * What it claims is a hint: EventBridge delivers at least once and may retry for up to 24 hours
 * (eventbridge/latest/userguide/eb-rule-retry-policy.html), Lambda's asynchronous queue can hand
 * the same event over twice (lambda/latest/dg/invocation-async-error-handling.html), and nothing
 * promises order. The state an event names is never written; the running check decides.
 */
export const instanceStateChange = z.object({
  id: z.string().min(1).max(128),
  "detail-type": z.literal(STATE_CHANGE_DETAIL_TYPE),
  source: z.literal("aws.ec2"),
  time: z.string().max(64).optional(),
  region: z.string().max(64).optional(),
  resources: z.array(z.string().max(256)).max(10).optional(),
  detail: z.object({
    // `i-` and 8 or 17 hex digits (API_Instance.html: "The ID of the instance").
    "instance-id": z.string().regex(/^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/),
    // The six values the page lists.
    state: z.enum(["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]),
  }),
});

export type InstanceStateChange = z.infer<typeof instanceStateChange>;

/** The states an event can name. */
export type AnnouncedState = InstanceStateChange["detail"]["state"];
