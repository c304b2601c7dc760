import { eq } from "drizzle-orm";
import { workspaces } from "../db/schema.js";
import { safeError } from "../redact.js";
import { finishRemoval } from "../workspaces/remove.js";
import { workspaceBatches } from "./batches.js";
import { forEachInBudget, type PassContext, type PassCounts, zeroCounts } from "./types.js";

/** Removal: `removing` rows — terminate the instance, then `removed` (the API's own path). */
export async function sweepRemoval(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  for await (const rows of workspaceBatches(ctx, eq(workspaces.status, "removing"))) {
    counts.checked += rows.length;
    await forEachInBudget(ctx, rows, 4, async (row) => {
      try {
        const result = await finishRemoval(ctx.deps, row, "sweep:removal");
        if (result.done) counts.changed++;
        else counts.transient++;
      } catch (err) {
        counts.errors++;
        ctx.deps.log.error("removal failed", { workspaceId: row.id, error: safeError(err) });
      }
    });
  }
  return counts;
}
