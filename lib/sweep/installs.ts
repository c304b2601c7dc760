import { and, asc, eq, gt, or } from "drizzle-orm";
import { forEachBounded } from "../compute/instances.js";
import { workspacePlugins } from "../db/schema.js";
import { finishInstall } from "../plugins/install.js";
import { hasTimeForBatch, type PassContext, type PassCounts, zeroCounts } from "./types.js";

/**
 * Installs: plugin installs that outlived their request (the API answered 202) — read each stored
 * command's result and record `installed` or `failed`. Still running: left for the next run.
 */
export async function sweepInstalls(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const { db } = ctx.deps;
  type Key = { workspaceId: string; name: string };
  let after = null as Key | null;
  while (hasTimeForBatch(ctx.budget)) {
    const cursor = after;
    const rows = await db
      .select({ workspaceId: workspacePlugins.workspaceId, name: workspacePlugins.name })
      .from(workspacePlugins)
      .where(
        and(
          eq(workspacePlugins.state, "installing"),
          cursor === null
            ? undefined
            : or(
                gt(workspacePlugins.workspaceId, cursor.workspaceId),
                and(
                  eq(workspacePlugins.workspaceId, cursor.workspaceId),
                  gt(workspacePlugins.name, cursor.name),
                ),
              ),
        ),
      )
      .orderBy(asc(workspacePlugins.workspaceId), asc(workspacePlugins.name))
      .limit(ctx.batchSize);
    if (rows.length === 0) break;
    counts.checked += rows.length;
    await forEachBounded(rows, 4, async (row) => {
      try {
        const outcome = await finishInstall(ctx.deps, row);
        switch (outcome) {
          case "installed":
          case "failed":
            counts.changed++;
            break;
          case "pending":
            counts.transient++;
            break;
          case "skipped":
            break;
          default: {
            const unreachable: never = outcome;
            throw new Error(`unhandled ${String(unreachable)}`);
          }
        }
      } catch (err) {
        counts.errors++;
        ctx.deps.log.error("install finish failed", { ...row, error: String(err) });
      }
    });
    if (rows.length < ctx.batchSize) break;
    after = rows[rows.length - 1] ?? null;
  }
  return counts;
}
