import { and, eq, isNull, ne, sql } from "drizzle-orm";
import { describeAwsError } from "../compute/errors.js";
import { findByClientTokens, type TokenInstance } from "../compute/instances.js";
import { clientTokenFor } from "../compute/launch.js";
import { type WorkspaceRow, workspaces } from "../db/schema.js";
import { safeError } from "../redact.js";
import { launchWorkspace, recordInstance } from "../workspaces/launch.js";
import { olderThan, workspaceBatches } from "./batches.js";
import {
  forEachInBudget,
  noteRefusal,
  type PassContext,
  type PassCounts,
  zeroCounts,
} from "./types.js";

// RunInstances has its own small token bucket (5 requests, refilling 2/s per account and region:
// docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html): re-drive a few at a time.
const PARALLEL_LAUNCHES = 2;
const LAUNCH_BATCH = 20;

/**
 * Launch: instance-backed `provisioning` rows without an instance, untouched for 30 s (the API's
 * own attempt failed transiently or its answer was lost).
 *
 * First, per batch, one DescribeInstances with the `client-token` filter: an instance launched
 * under a row's current ClientToken *is* that row's, and is adopted (its answer was lost). The
 * rest are re-driven with RunInstances under the same ClientToken, which returns the instance if
 * an earlier attempt did launch one and EC2 did not list it yet.
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
    const owned = await ownedInstances(ctx, rows);
    await forEachInBudget(ctx, rows, PARALLEL_LAUNCHES, async (row) => {
      try {
        const found = owned.get(row.id);
        const result = found
          ? await recordInstance(ctx.deps, row, found, "sweep:launch", {
              reason: `instance ${found.instanceId} adopted by its ClientToken (the launch's answer was lost)`,
            })
          : await launchWorkspace(ctx.deps, row, "sweep:launch");
        switch (result.kind) {
          case "launched":
          case "failed":
            counts.changed++;
            break;
          case "pending":
            counts.transient++;
            if (noteRefusal(ctx, "ec2:RunInstances", result.error)) counts.misconfigured++;
            break;
          case "superseded":
            break;
          default: {
            const unreachable: never = result;
            throw new Error(`unhandled launch result ${JSON.stringify(unreachable)}`);
          }
        }
      } catch (err) {
        counts.errors++;
        ctx.deps.log.error("launch re-drive failed", {
          workspaceId: row.id,
          error: safeError(err),
        });
      }
    });
  }
  return counts;
}

/**
 * The live instances launched under the rows' current ClientTokens, by workspace id. A failed
 * lookup adopts nothing: re-driving RunInstances with the same token is safe either way.
 */
async function ownedInstances(
  ctx: PassContext,
  rows: readonly WorkspaceRow[],
): Promise<Map<string, TokenInstance>> {
  const byToken = new Map(rows.map((r) => [clientTokenFor(r.id, r.generation), r.id]));
  const owned = new Map<string, TokenInstance>();
  try {
    const found = await findByClientTokens(ctx.deps, [...byToken.keys()]);
    for (const [token, instance] of found) {
      const id = byToken.get(token);
      if (id !== undefined) owned.set(id, instance);
    }
  } catch (err) {
    noteRefusal(ctx, "ec2:DescribeInstances", describeAwsError(err));
  }
  return owned;
}
