import { and, inArray, isNotNull, ne } from "drizzle-orm";
import { PARALLEL_CALLS } from "../compute/instances.js";
import { workspaces } from "../db/schema.js";
import { transition } from "../workspaces/transition.js";
import { sameInstance, workspaceBatches } from "./batches.js";
import { checkBatch } from "./check-batch.js";
import { type PassContext, type PassCounts, zeroCounts } from "./types.js";

/**
 * Liveness: instance-backed `online`/`degraded` workspaces whose instance the running check
 * reports `stopped` go `offline`. `transient` leaves the row untouched — a throttled or failing
 * DescribeInstances is never evidence of death. Per batch of 200: one query, one DescribeInstances
 * call, and at most one conditional UPDATE (on status and instance id, so a restart racing this
 * pass is never overwritten).
 */
export async function sweepLiveness(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const where = and(
    inArray(workspaces.status, ["online", "degraded"]),
    ne(workspaces.runtime, "external"),
    isNotNull(workspaces.instanceId),
  );
  // One query fetches enough rows for the running check's parallel calls (200 ids each).
  const page = { ...ctx, batchSize: ctx.batchSize * PARALLEL_CALLS };
  for await (const rows of workspaceBatches(page, where)) {
    counts.checked += rows.length;
    const { stopped, transient, misconfigured } = await checkBatch(ctx, rows);
    counts.transient += transient;
    counts.misconfigured += misconfigured;
    if (stopped.length === 0) continue;
    const changed = await transition(ctx.deps.db, {
      ids: stopped.map((r) => r.id),
      from: ["online", "degraded"],
      to: "offline",
      where: sameInstance(stopped),
      reason: "instance stopped",
      actor: "sweep:liveness",
    });
    counts.changed += changed.length;
  }
  return counts;
}
