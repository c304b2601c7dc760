import { and, asc, eq, gt, inArray, or } from "drizzle-orm";
import { type WorkspacePluginRow, workspacePlugins } from "../db/schema.js";
import { type DriveOutcome, driveOperation } from "../plugins/reconcile.js";
import { driveInBatches, type PassContext, type PassCounts, type RowOutcome } from "./types.js";

// A record ended or a program sent is a change; `pending` is AWS not saying yet.
const COUNTED: Record<DriveOutcome, RowOutcome> = {
  finished: "changed",
  sent: "changed",
  pending: "transient",
  skipped: "unchanged",
};

/**
 * Plugins: installs and uninstalls whose requests ended before they did — the API answered 202,
 * the send's answer was lost, the request died, or a restart left them to be re-applied on a new
 * instance. Each is driven on ({@link driveOperation}): its command's result ends the record, or
 * its program is sent (again) once the workspace is online. Still running: the next run.
 */
export function sweepPlugins(ctx: PassContext): Promise<PassCounts> {
  type Key = { workspaceId: string; name: string };
  return driveInBatches<WorkspacePluginRow, Key | null>(ctx, {
    start: null,
    fetch: (cursor, limit) =>
      ctx.deps.db
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
        .limit(limit),
    next: (row) => ({ workspaceId: row.workspaceId, name: row.name }),
    what: "plugin operation",
    ids: (row) => ({ workspaceId: row.workspaceId, name: row.name }),
    drive: async (row) => COUNTED[await driveOperation(ctx.deps, row)],
  });
}
