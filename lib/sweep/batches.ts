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

/** `(id, instance_id)` pairs, so a batch update can require each row to still name its instance. */
export function sameInstance(rows: readonly { id: string; instanceId: string | null }[]): SQL {
  const pairs = rows.map((r) => sql`(${r.id}, ${r.instanceId})`);
  return sql`(w.id::text, w.instance_id) in (${sql.join(pairs, sql`, `)})`;
}

export const olderThan = (column: SQL, seconds: number) =>
  sql`${column} < now() - make_interval(secs => ${seconds})`;
