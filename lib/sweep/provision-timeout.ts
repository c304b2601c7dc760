import { sql } from "drizzle-orm";
import { transition } from "../workspaces/transition.js";
import { olderThan } from "./batches.js";
import { hasTimeForBatch, type PassContext, type PassCounts, zeroCounts } from "./types.js";

/**
 * Provision timeout: `provisioning`/`awaiting_agent` for longer than `PROVISION_TIMEOUT_SECONDS`
 * since the last change → `failed`. The row lets go of its instance, which makes that instance an
 * orphan the orphan pass terminates: a workspace that never came up does not keep billing.
 */
export async function sweepProvisionTimeout(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const seconds = ctx.deps.config.provisionTimeoutSeconds;
  while (hasTimeForBatch(ctx.budget)) {
    const changed = await transition(ctx.deps.db, {
      ids: "matching",
      from: ["provisioning", "awaiting_agent"],
      to: "failed",
      where: olderThan(sql`w.updated_at`, seconds),
      limit: ctx.batchSize,
      reason: `not ready within ${seconds}s`,
      actor: "sweep:provision-timeout",
      set: { instanceId: null, lastError: `provision timed out after ${seconds}s` },
    });
    counts.checked += changed.length;
    counts.changed += changed.length;
    if (changed.length < ctx.batchSize) break;
  }
  return counts;
}
