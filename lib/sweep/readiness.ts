import { and, inArray, isNotNull, ne } from "drizzle-orm";
import { pingStatuses } from "../compute/commands.js";
import type { AwsProblem } from "../compute/errors.js";
import { PARALLEL_CALLS } from "../compute/instances.js";
import { type WorkspaceRow, workspaces } from "../db/schema.js";
import { transition } from "../workspaces/transition.js";
import { sameInstance, workspaceBatches } from "./batches.js";
import { checkBatch, recordRefusal } from "./check-batch.js";
import { noteRefusal, type PassContext, type PassCounts, passActor, zeroCounts } from "./types.js";

/** The statuses readiness looks at (the sweep's query and the EC2-event path alike). */
export const READINESS_STATUSES = ["provisioning", "starting"] as const;

/**
 * Readiness: a `provisioning` (or `starting`) workspace whose instance is `running` and whose SSM
 * agent is `Online` goes `online` — commands can reach it from now on. An instance that is
 * definitely `stopped` while provisioning goes `failed` (a `starting` one is the power pass's:
 * it re-drives the start). Anything uncertain waits for the next run.
 *
 * Per page of rows: ⌈N/200⌉ DescribeInstances calls and ⌈running/100⌉ DescribeInstanceInformation
 * filters (each paged by 50) — batches, never one call per row.
 */
export async function sweepReadiness(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const where = and(
    inArray(workspaces.status, [...READINESS_STATUSES]),
    ne(workspaces.runtime, "external"),
    isNotNull(workspaces.instanceId),
  );
  // One query fetches enough rows for the running check's parallel calls (200 ids each).
  const page = { ...ctx, batchSize: ctx.batchSize * PARALLEL_CALLS };
  for await (const rows of workspaceBatches(page, where)) await readinessBatch(ctx, rows, counts);
  return counts;
}

/**
 * Readiness over one batch of rows in {@link READINESS_STATUSES} that name an instance, added to
 * `counts`: the sweep runs it page by page, the EC2-event path on the rows an event named.
 */
export async function readinessBatch(
  ctx: PassContext,
  rows: readonly WorkspaceRow[],
  counts: PassCounts,
): Promise<void> {
  counts.checked += rows.length;
  const checked = await checkBatch(ctx, rows);
  counts.transient += checked.transient;
  counts.misconfigured += checked.misconfigured;
  const pings = await pingStatuses(
    ctx.deps,
    checked.running.map((r) => r.instanceId ?? ""),
  );
  const ready: WorkspaceRow[] = [];
  const refused: WorkspaceRow[] = [];
  let refusal: AwsProblem | null = null;
  for (const row of checked.running) {
    const ping = pings.get(row.instanceId ?? "");
    if (ping?.kind === "known") {
      if (ping.status === "Online") ready.push(row);
      continue;
    }
    counts.transient++;
    if (ping && noteRefusal(ctx, "ssm:DescribeInstanceInformation", ping.error)) {
      refused.push(row);
      refusal = ping.error;
    }
  }
  counts.misconfigured += refused.length;
  if (refusal) await recordRefusal(ctx, refused, "ssm:DescribeInstanceInformation", refusal);
  if (ready.length > 0) {
    const changed = await transition(ctx.deps.db, {
      ids: ready.map((r) => r.id),
      from: ["provisioning", "starting"],
      to: "online",
      where: sameInstance(ready),
      reason: "instance running and agent online",
      actor: passActor(ctx, "readiness"),
      set: { lastError: null },
    });
    counts.changed += changed.length;
  }
  const dead = checked.stopped.filter((r) => r.status === "provisioning");
  if (dead.length > 0) {
    const changed = await transition(ctx.deps.db, {
      ids: dead.map((r) => r.id),
      from: ["provisioning"],
      to: "failed",
      where: sameInstance(dead),
      reason: "instance stopped while provisioning",
      actor: passActor(ctx, "readiness"),
      set: { lastError: "instance stopped while provisioning" },
    });
    counts.changed += changed.length;
  }
}
