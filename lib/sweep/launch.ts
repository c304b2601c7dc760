import { and, eq, isNull, ne, sql } from "drizzle-orm";
import { forEachBounded } from "../compute/instances.js";
import { workspaces } from "../db/schema.js";
import { launchWorkspace } from "../workspaces/launch.js";
import { olderThan, workspaceBatches } from "./batches.js";
import { type PassContext, type PassCounts, zeroCounts } from "./types.js";

// RunInstances has its own small token bucket (5 requests, refilling 2/s per account and region:
// docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html): re-drive a few at a time.
const PARALLEL_LAUNCHES = 2;
const LAUNCH_BATCH = 20;

/**
 * Launch: instance-backed `provisioning` rows without an instance, untouched for 30 s (the API's
 * own attempt failed transiently or its answer was lost) — re-drive RunInstances with the same
 * ClientToken, which returns the instance if the first attempt did launch one.
 */
export async function sweepLaunch(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const where = and(
    eq(workspaces.status, "provisioning"),
    ne(workspaces.runtime, "external"),
    isNull(workspaces.instanceId),
    olderThan(sql`${workspaces.updatedAt}`, 30),
  );
  for await (const rows of workspaceBatches({ ...ctx, batchSize: LAUNCH_BATCH }, where)) {
    counts.checked += rows.length;
    await forEachBounded(rows, PARALLEL_LAUNCHES, async (row) => {
      try {
        const result = await launchWorkspace(ctx.deps, row, "sweep:launch");
        if (result.kind === "launched" || result.kind === "failed") counts.changed++;
        else if (result.kind === "pending") counts.transient++;
      } catch (err) {
        counts.errors++;
        ctx.deps.log.error("launch re-drive failed", { workspaceId: row.id, error: String(err) });
      }
    });
  }
  return counts;
}
