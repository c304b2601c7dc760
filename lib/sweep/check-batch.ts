import { sql } from "drizzle-orm";
import type { AwsProblem } from "../compute/errors.js";
import { checkInstances } from "../compute/instances.js";
import type { WorkspaceRow } from "../db/schema.js";
import { noteRefusal, type PassContext } from "./types.js";

export interface CheckedBatch {
  running: WorkspaceRow[];
  stopped: WorkspaceRow[];
  /** Rows the running check could not decide; they are left untouched. */
  transient: number;
  /** Of those, rows undecided because EC2 refused this deployment's identity. */
  misconfigured: number;
}

/**
 * Runs the running check over a batch of rows that name an instance (one DescribeInstances call
 * for up to 200) and sorts the rows by outcome — exhaustively, so a fourth outcome breaks the build.
 * A refusal of the deployment's identity stays `transient` for status (it says nothing about the
 * instance) but is surfaced: noted for the run's ERROR line and written to the rows' `lastError`.
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
  const batch: CheckedBatch = { running: [], stopped: [], transient: 0, misconfigured: 0 };
  const refused: WorkspaceRow[] = [];
  let refusal: AwsProblem | null = null;
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
        batch.transient++;
        if (noteRefusal(ctx, "ec2:DescribeInstances", check.error)) {
          refused.push(row);
          refusal = check.error;
        }
        break;
      case undefined:
        batch.transient++;
        break;
      default: {
        const unreachable: never = check;
        throw new Error(`unhandled outcome ${JSON.stringify(unreachable)}`);
      }
    }
  }
  batch.misconfigured = refused.length;
  // The evidence every liveness and readiness decision rests on; `transient` rows stay untouched.
  ctx.deps.log.debug("running check", {
    rows: rows.length,
    running: batch.running.length,
    stopped: batch.stopped.length,
    transient: batch.transient,
    misconfigured: batch.misconfigured,
  });
  if (refusal) await recordRefusal(ctx, refused, "ec2:DescribeInstances", refusal);
  return batch;
}

/**
 * Writes why AWS could not be asked to the rows' `lastError`, in one statement, leaving rows that
 * already say so alone (so an unchanged refusal does not rewrite every row on every run).
 */
export async function recordRefusal(
  ctx: PassContext,
  rows: readonly WorkspaceRow[],
  action: string,
  error: AwsProblem,
): Promise<void> {
  if (rows.length === 0) return;
  const message = `AWS refused ${action} (${error.code}): ${error.message} — check the deployment's IAM permissions and credentials`;
  await ctx.deps.db.execute(sql`
    update workspaces set last_error = ${message}
    where id in ${rows.map((r) => r.id)} and last_error is distinct from ${message}`);
}
