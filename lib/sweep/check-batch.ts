import { checkInstances } from "../compute/instances.js";
import type { WorkspaceRow } from "../db/schema.js";
import type { PassContext } from "./types.js";

export interface CheckedBatch {
  running: WorkspaceRow[];
  stopped: WorkspaceRow[];
  /** Rows the running check could not decide; they are left untouched. */
  transient: number;
}

/**
 * Runs the running check over a batch of rows that name an instance (one DescribeInstances call
 * for up to 200) and sorts the rows by outcome — exhaustively, so a fourth outcome breaks the build.
 */
export async function checkBatch(
  ctx: PassContext,
  rows: readonly WorkspaceRow[],
): Promise<CheckedBatch> {
  const checks = await checkInstances(
    ctx.deps,
    rows.map((r) => r.instanceId ?? ""),
    { launchedAt: new Map(rows.map((r) => [r.instanceId ?? "", r.launchedAt])) },
  );
  const batch: CheckedBatch = { running: [], stopped: [], transient: 0 };
  for (const row of rows) {
    const check = checks.get(row.instanceId ?? "");
    switch (check?.outcome) {
      case "running":
        batch.running.push(row);
        break;
      case "stopped":
        batch.stopped.push(row);
        break;
      case "transient":
      case undefined:
        batch.transient++;
        break;
      default: {
        const unreachable: never = check;
        throw new Error(`unhandled outcome ${JSON.stringify(unreachable)}`);
      }
    }
  }
  return batch;
}
