import { and, asc, gt, type SQL, sql } from "drizzle-orm";
import { type WorkspaceRow, workspaces } from "../db/schema.js";
import { hasTimeForBatch, type PassContext } from "./types.js";

/**
 * Walks the workspaces matching `where` in id order, one keyset page (one query) per batch, while
 * the budget allows. A row changed by the batch's own work does not shift the next page.
 */
export async function* workspaceBatches(
  ctx: PassContext,
  where: SQL | undefined,
): AsyncGenerator<WorkspaceRow[]> {
  let after: string | null = null;
  while (hasTimeForBatch(ctx.budget)) {
    const rows: WorkspaceRow[] = await ctx.deps.db
      .select()
      .from(workspaces)
      .where(and(where, after === null ? undefined : gt(workspaces.id, after)))
      .orderBy(asc(workspaces.id))
      .limit(ctx.batchSize);
    if (rows.length === 0) return;
    yield rows;
    if (rows.length < ctx.batchSize) return;
    after = rows[rows.length - 1]?.id ?? null;
  }
}

/**
 * `(id, instance_id)` pairs, so a batch update can require each row to still name its instance.
 * The pairs travel as one jsonb parameter: a row-value `IN` list of a few hundred pairs silently
 * matched nothing on PGlite (300 pairs, 0 rows), and one parameter also keeps the statement's
 * size independent of the batch.
 */
export function sameInstance(rows: readonly { id: string; instanceId: string | null }[]): SQL {
  const pairs = JSON.stringify(rows.map((r) => ({ id: r.id, instance_id: r.instanceId })));
  return sql`(w.id, w.instance_id) in (
    select p.id, p.instance_id from jsonb_to_recordset(${pairs}::jsonb) as p(id uuid, instance_id text))`;
}

export const olderThan = (column: SQL, seconds: number) =>
  sql`${column} < now() - make_interval(secs => ${seconds})`;
