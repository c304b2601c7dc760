import { sql } from "drizzle-orm";
import { transition } from "../workspaces/transition.js";
import { olderThan } from "./batches.js";
import { hasTimeForBatch, type PassContext, type PassCounts, zeroCounts } from "./types.js";

/**
 * External staleness: an external agent whose last heartbeat (or, never having beaten, its last
 * change) is older than `REMOTE_STALE_AFTER_SECONDS` goes `offline`. Measured on the database
 * clock, so Lambda clock skew cannot mark a live agent stale. One statement per batch.
 */
export async function sweepExternalStaleness(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const stale = sql`w.runtime = 'external' and ${olderThan(
    sql`coalesce(w.last_heartbeat_at, w.updated_at)`,
    ctx.deps.config.remoteStaleAfterSeconds,
  )}`;
  while (hasTimeForBatch(ctx.budget)) {
    const changed = await transition(ctx.deps.db, {
      ids: "matching",
      from: ["online", "degraded"],
      to: "offline",
      where: stale,
      limit: ctx.batchSize,
      reason: "heartbeat stale",
      actor: "sweep:external",
    });
    counts.checked += changed.length;
    counts.changed += changed.length;
    if (changed.length < ctx.batchSize) break;
  }
  return counts;
}
