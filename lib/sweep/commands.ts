import { driveCommand } from "../commands/reconcile.js";
import { unfinishedCommands } from "../commands/records.js";
import {
  forEachInBudget,
  hasTimeForBatch,
  type PassContext,
  type PassCounts,
  zeroCounts,
} from "./types.js";

/**
 * Commands: records whose requests ended before their commands did — the API answered 202, the
 * send's answer was lost, the request died. Each is driven on ({@link driveCommand}): its
 * invocation's outcome ends the record, a lost send is found in SSM's history (or, never taken,
 * ends `undeliverable`). Nothing is ever sent from here. Still running: the next run.
 */
export async function sweepCommands(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  let afterSeq = 0;
  while (hasTimeForBatch(ctx.budget)) {
    const rows = await unfinishedCommands(ctx.deps.db, afterSeq, ctx.batchSize);
    counts.checked += rows.length;
    await forEachInBudget(ctx, rows, 4, async (row) => {
      try {
        const drove = await driveCommand(ctx.deps, row);
        if (drove === "finished" || drove === "found") counts.changed++;
        else if (drove === "pending") counts.transient++;
      } catch (err) {
        counts.errors++;
        ctx.deps.log.error("command record failed to advance", {
          workspaceId: row.workspaceId,
          commandId: row.id,
          error: String(err),
        });
      }
    });
    if (rows.length < ctx.batchSize) break;
    afterSeq = rows.at(-1)?.seq ?? afterSeq;
  }
  return counts;
}
