import { type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client.js";
import type { WorkspaceStatus } from "../db/schema.js";
import { type Actor, fromRaw, type WorkspaceRow } from "./model.js";

/** Columns a transition may set alongside the status. `"now"` means the database clock. */
export interface TransitionSet {
  instanceId?: string | null;
  launchedAt?: Date | null | "now";
  lastHeartbeatAt?: "now";
  lastError?: string | null;
  bumpGeneration?: boolean;
  stoppedReason?: "user" | "idle" | null;
  hibernated?: boolean;
}

export interface TransitionInput {
  /** The rows to change; `"matching"` changes every row `where` matches (up to `limit`). */
  ids: readonly string[] | "matching";
  /** The statuses the row must be in; anything else is left alone (a racing writer won). */
  from: readonly WorkspaceStatus[];
  to: WorkspaceStatus;
  reason: string;
  actor: Actor;
  /** When set, the row must still name this instance (`null`: must have none). */
  instanceId?: string | null;
  set?: TransitionSet;
  /** An extra condition on the row, e.g. a staleness test on the database clock. */
  where?: SQL;
  /** At most this many rows (a sweep batch). */
  limit?: number;
}

/** The condition every move to `online` carries (also in the heartbeat's own statement). */
export const ONLINE_NEEDS_INSTANCE = sql`(w.runtime = 'external' or w.instance_id is not null)`;

export interface Transitioned {
  row: WorkspaceRow;
  from: WorkspaceStatus;
}

/**
 * The one way a workspace's status changes: a conditional `UPDATE … WHERE status IN (from)` and
 * its event, in a single statement (one round trip, atomic on both drivers). Rows that no longer
 * match — another writer got there first — are not touched and not returned, so a racing writer
 * is never overwritten and every change is logged exactly once.
 */
export async function transition(db: Db, input: TransitionInput): Promise<Transitioned[]> {
  if (input.ids.length === 0 || input.from.length === 0) return [];
  if (input.ids === "matching" && !input.where) throw new Error("transition: matching needs where");
  const s = input.set ?? {};
  const sets: SQL[] = [sql`status = ${input.to}`, sql`updated_at = now()`];
  if (s.instanceId !== undefined) sets.push(sql`instance_id = ${s.instanceId}`);
  if (s.launchedAt === "now") sets.push(sql`launched_at = now()`);
  else if (s.launchedAt !== undefined) sets.push(sql`launched_at = ${s.launchedAt}`);
  if (s.lastHeartbeatAt === "now") sets.push(sql`last_heartbeat_at = now()`);
  if (s.lastError !== undefined) sets.push(sql`last_error = ${s.lastError}`);
  if (s.stoppedReason !== undefined) sets.push(sql`stopped_reason = ${s.stoppedReason}`);
  if (s.hibernated !== undefined) sets.push(sql`hibernated = ${s.hibernated}`);
  // External workspaces launch nothing: their generation never moves.
  if (s.bumpGeneration) {
    sets.push(
      sql`generation = w.generation + (case when w.runtime = 'external' then 0 else 1 end)`,
    );
  }

  const conds: SQL[] = [sql`w.status::text in ${input.from as string[]}`];
  if (input.ids !== "matching") conds.push(sql`w.id in ${input.ids}`);
  if (input.instanceId === null) conds.push(sql`w.instance_id is null`);
  else if (input.instanceId !== undefined) conds.push(sql`w.instance_id = ${input.instanceId}`);
  if (input.where) conds.push(input.where);
  // An instance-backed workspace is never online without its instance: whatever brings it
  // online (readiness, an agent's registration, a heartbeat) must have recorded the instance.
  if (input.to === "online") conds.push(ONLINE_NEEDS_INSTANCE);

  // `prev` locks the matching rows and remembers their old status for the event.
  const result = await db.execute(sql`
    with prev as (
      select w.id, w.status as prev_status from workspaces w
      where ${sql.join(conds, sql` and `)}
      ${input.limit !== undefined ? sql`order by w.id limit ${input.limit}` : sql``}
      for update
    ),
    upd as (
      update workspaces w set ${sql.join(sets, sql`, `)}
      from prev where w.id = prev.id
      returning w.*, prev.prev_status
    ),
    ev as (
      insert into workspace_events (workspace_id, type, "from", "to", reason, actor)
      select id, case when status = 'removed' then 'workspace.removed'
                      else 'workspace.status_changed' end,
        prev_status, status, ${input.reason}, ${input.actor} from upd
    )
    select * from upd`);
  return rowsOf(result).map((r) => ({
    row: fromRaw(r),
    from: r.prev_status as WorkspaceStatus,
  }));
}

/**
 * Rows of a raw `execute` result; PGlite, the Neon Pool and node-postgres all answer `{ rows }`.
 * Raw rows keep each driver's own types (node-postgres and Neon give bigint and numeric as
 * strings, PGlite numbers), so callers convert explicitly, as `fromRaw` does.
 */
export function rowsOf(result: unknown): Record<string, unknown>[] {
  return (result as { rows: Record<string, unknown>[] }).rows;
}
