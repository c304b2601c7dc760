import { sql } from "drizzle-orm";
import { transition } from "../workspaces/transition.js";
import { olderThan } from "./batches.js";
import { hasTimeForBatch, type PassContext, type PassCounts, zeroCounts } from "./types.js";

/**
 * Provision timeout: `provisioning`/`awaiting_agent` for longer than `PROVISION_TIMEOUT_SECONDS`
 * since the last change → `failed`. An instance-backed row lets go of its instance *and* of its
 * ClientToken (the generation moves on): the instance — recorded or only launched under the old
 * token — becomes an orphan the orphan pass terminates, so a workspace that never came up does
 * not keep billing, and the old instance's token (bound to its generation) no longer
 * authenticates, so a late agent cannot bring a failed workspace online without an instance.
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
      set: {
        instanceId: null,
        launchedAt: null,
        bumpGeneration: true,
        lastError: `provision timed out after ${seconds}s`,
      },
    });
    counts.checked += changed.length;
    counts.changed += changed.length;
    if (changed.length < ctx.batchSize) break;
  }
  return counts;
}
