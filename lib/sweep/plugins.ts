import { and, asc, eq, gt, inArray, or } from "drizzle-orm";
import { workspacePlugins } from "../db/schema.js";
import { driveOperation } from "../plugins/reconcile.js";
import { safeError } from "../redact.js";
import {
  forEachInBudget,
  hasTimeForBatch,
  type PassContext,
  type PassCounts,
  zeroCounts,
} from "./types.js";

/**
 * Plugins: installs and uninstalls whose requests ended before they did — the API answered 202,
 * the send's answer was lost, the request died, or a restart left them to be re-applied on a new
 * instance. Each is driven on ({@link driveOperation}): its command's result ends the record, or
 * its program is sent (again) once the workspace is online. Still running: the next run.
 */
export async function sweepPlugins(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const { db } = ctx.deps;
  type Key = { workspaceId: string; name: string };
  let after = null as Key | null;
  while (hasTimeForBatch(ctx.budget)) {
    const cursor = after;
    const rows = await db
      .select()
      .from(workspacePlugins)
      .where(
        and(
          inArray(workspacePlugins.state, ["installing", "uninstalling"]),
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
    await forEachInBudget(ctx, rows, 4, async (row) => {
      try {
        const outcome = await driveOperation(ctx.deps, row);
        switch (outcome) {
          case "finished":
          case "sent":
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
        ctx.deps.log.error("plugin operation failed to advance", {
          workspaceId: row.workspaceId,
          name: row.name,
          error: safeError(err),
        });
      }
    });
    if (rows.length < ctx.batchSize) break;
    const last = rows[rows.length - 1];
    after = last ? { workspaceId: last.workspaceId, name: last.name } : null;
  }
  return counts;
}
