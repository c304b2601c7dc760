import { deadlineIn } from "../deadline.js";
import { deliverPending } from "../webhooks/deliver.js";
import { BATCH_RESERVE_MS, type PassContext, type PassCounts, zeroCounts } from "./types.js";

/**
 * The webhooks pass: delivers whatever is due — retries after backoff, deliveries a request or
 * the EC2-event function did not get to, and those a crashed writer left behind (the outbox
 * keeps them pending until acknowledged). `checked`: attempts made; `changed`: acknowledged;
 * `transient`: failed, to be retried; `errors`: given up after the retry period.
 */
export async function sweepWebhooks(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const report = await deliverPending(ctx.deps, {
    deadline: deadlineIn(ctx.budget.remainingMs() - BATCH_RESERVE_MS),
  });
  counts.checked = report.attempted;
  counts.changed = report.delivered;
  counts.transient = report.retrying;
  counts.errors = report.givenUp;
  return counts;
}
