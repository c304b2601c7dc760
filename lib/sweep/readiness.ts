import { and, eq, isNotNull, ne } from "drizzle-orm";
import { pingStatus } from "../compute/commands.js";
import { forEachBounded, PARALLEL_CALLS } from "../compute/instances.js";
import { type WorkspaceRow, workspaces } from "../db/schema.js";
import { transition } from "../workspaces/transition.js";
import { sameInstance, workspaceBatches } from "./batches.js";
import { checkBatch } from "./check-batch.js";
import { type PassContext, type PassCounts, zeroCounts } from "./types.js";

/**
 * Readiness: a `provisioning` workspace whose instance is `running` and whose SSM agent is
 * `Online` goes `online` — commands can reach it from now on. An instance that is definitely
 * `stopped` while provisioning goes `failed`. Anything uncertain waits for the next run.
 */
export async function sweepReadiness(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const where = and(
    eq(workspaces.status, "provisioning"),
    ne(workspaces.runtime, "external"),
    isNotNull(workspaces.instanceId),
  );
  // One query fetches enough rows for the running check's parallel calls (200 ids each).
  const page = { ...ctx, batchSize: ctx.batchSize * PARALLEL_CALLS };
  for await (const rows of workspaceBatches(page, where)) {
    counts.checked += rows.length;
    const { running, stopped: dead, transient } = await checkBatch(ctx, rows);
    counts.transient += transient;
    const ready: WorkspaceRow[] = [];
    await forEachBounded(running, 4, async (row) => {
      const ping = await pingStatus(ctx.deps, row.instanceId ?? "");
      if (ping.kind === "known" && ping.status === "Online") ready.push(row);
      else if (ping.kind === "transient") counts.transient++;
    });
    if (ready.length > 0) {
      const changed = await transition(ctx.deps.db, {
        ids: ready.map((r) => r.id),
        from: ["provisioning"],
        to: "online",
        where: sameInstance(ready),
        reason: "instance running and agent online",
        actor: "sweep:readiness",
      });
      counts.changed += changed.length;
    }
    if (dead.length > 0) {
      const changed = await transition(ctx.deps.db, {
        ids: dead.map((r) => r.id),
        from: ["provisioning"],
        to: "failed",
        where: sameInstance(dead),
        reason: "instance stopped while provisioning",
        actor: "sweep:readiness",
        set: { lastError: "instance stopped while provisioning" },
      });
      counts.changed += changed.length;
    }
  }
  return counts;
}
