import type { Context } from "aws-lambda";
import { createAwsClients } from "../lib/compute/clients.js";
import { loadConfig } from "../lib/config.js";
import { openDb, STATEMENT_TIMEOUT_MS } from "../lib/db/client.js";
import { deadlineIn } from "../lib/deadline.js";
import { systemClock } from "../lib/deps.js";
import { reconcileInstanceEvent } from "../lib/ec2events/reconcile.js";
import { createLog } from "../lib/log.js";

// EventBridge's `EC2 Instance State-change Notification` events (infra/ec2-events.ts). Built once
// per container; each invocation reconciles the one instance its event names.
const config = loadConfig(process.env, "lambda");
const log = createLog("ec2-events", config.logLevel);
const { db } = await openDb(config.databaseUrl, {
  driver: config.databaseDriver,
  statementTimeoutMs: STATEMENT_TIMEOUT_MS,
  onPoolError: (err) => log.warn("database connection dropped", { error: err.message }),
});
const aws = createAwsClients({ region: config.awsRegion });
const deps = { db, aws, clock: systemClock, log, config };

// Done well inside the function timeout, so a slow call is cut off rather than the function.
const MARGIN_MS = 3_000;

export const handler = async (event: unknown, context: Context) => {
  const outcome = await reconcileInstanceEvent(deps, event, {
    deadline: deadlineIn(context.getRemainingTimeInMillis() - MARGIN_MS),
  });
  // Never thrown: a retry of the same event finds what a new check finds, and the sweep follows.
  const id = (event as { id?: unknown } | null)?.id;
  log.info("ec2 event", { eventId: typeof id === "string" ? id.slice(0, 128) : null, ...outcome });
  return { kind: outcome.kind };
};
