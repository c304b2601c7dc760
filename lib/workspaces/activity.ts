import { sql } from "drizzle-orm";
import { workspaces } from "../db/schema.js";
import type { Deps } from "../deps.js";
import type { WorkspaceRow } from "./model.js";

/**
 * Real work happened in the workspace now (database clock): idle auto-stop measures from here.
 * Busy heartbeats, plugin operations, commands and `POST /workspaces/:id/activity` call it; an
 * idle heartbeat does not. Null when the workspace is removing, removed or gone.
 */
export async function recordActivity(
  deps: Pick<Deps, "db">,
  id: string,
): Promise<WorkspaceRow | null> {
  const [updated] = await deps.db
    .update(workspaces)
    .set({ lastActivityAt: sql`now()` })
    .where(sql`${workspaces.id} = ${id} and ${workspaces.status} not in ('removing', 'removed')`)
    .returning();
  return updated ?? null;
}
