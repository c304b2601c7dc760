import { and, inArray, isNotNull, ne } from "drizzle-orm";
import { type PingResult, pingStatuses } from "../compute/commands.js";
import type { AwsProblem } from "../compute/errors.js";
import { PARALLEL_CALLS } from "../compute/instances.js";
import { type WorkspaceRow, workspaces } from "../db/schema.js";
import { transition } from "../workspaces/transition.js";
import { sameInstance, workspaceBatches } from "./batches.js";
import { checkBatch, recordRefusal } from "./check-batch.js";
import { noteRefusal, type PassContext, type PassCounts, passActor, zeroCounts } from "./types.js";

/** The statuses liveness looks at (the sweep's query and the EC2-event path alike). */
export const LIVENESS_STATUSES = ["online", "degraded"] as const;

/**
 * Liveness: instance-backed `online`/`degraded` workspaces.
 *
 * - The running check says `stopped` → `offline`. `transient` leaves the row untouched — a
 *   throttled or failing DescribeInstances is never evidence of death.
 * - EC2 says `running` but SSM has not seen the agent `Online` for longer than
 *   `DEGRADED_AFTER_SECONDS` (its LastPingDateTime is older, or SSM no longer lists it) →
 *   `degraded`: the instance bills and runs, yet no command (plugin install, uninstall) can reach
 *   it. An operator restarts it, or looks at why the agent lost SSM (its instance profile, its
 *   network). SSM `Online` again → back to `online`. A failed DescribeInstanceInformation changes
 *   nothing either way.
 *
 * Per batch of 200: one query, one DescribeInstances call, ⌈running/100⌉
 * DescribeInstanceInformation calls, and at most three conditional UPDATEs (on status and
 * instance id, so a restart racing this pass is never overwritten), each writing its events.
 */
export async function sweepLiveness(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const where = and(
    inArray(workspaces.status, [...LIVENESS_STATUSES]),
    ne(workspaces.runtime, "external"),
    isNotNull(workspaces.instanceId),
  );
  // One query fetches enough rows for the running check's parallel calls (200 ids each).
  const page = { ...ctx, batchSize: ctx.batchSize * PARALLEL_CALLS };
  for await (const rows of workspaceBatches(page, where)) await livenessBatch(ctx, rows, counts);
  return counts;
}

/**
 * Liveness over one batch of rows in {@link LIVENESS_STATUSES} that name an instance: the running
 * check, the SSM pings, and the conditional transitions, added to `counts`. The sweep runs it page
 * by page; the EC2-event path runs it on the rows of the instance an event named.
 */
export async function livenessBatch(
  ctx: PassContext,
  rows: readonly WorkspaceRow[],
  counts: PassCounts,
): Promise<void> {
  const degradedAfterMs = ctx.deps.config.degradedAfterSeconds * 1000;
  counts.checked += rows.length;
  const { running, stopped, transient, misconfigured } = await checkBatch(ctx, rows);
  counts.transient += transient;
  counts.misconfigured += misconfigured;

  const pings = await pingStatuses(
    ctx.deps,
    running.map((r) => r.instanceId ?? ""),
  );
  const now = ctx.deps.clock.now().getTime();
  const lost: WorkspaceRow[] = [];
  const back: WorkspaceRow[] = [];
  const refused: WorkspaceRow[] = [];
  let refusal: AwsProblem | null = null;
  for (const row of running) {
    const ping = pings.get(row.instanceId ?? "");
    switch (agentSeen(ping, row, now, degradedAfterMs)) {
      case "online":
        if (row.status === "degraded") back.push(row);
        break;
      case "lost":
        if (row.status === "online") lost.push(row);
        break;
      case "recently":
        break;
      case "unknown":
        counts.transient++;
        if (
          ping?.kind === "transient" &&
          noteRefusal(ctx, "ssm:DescribeInstanceInformation", ping.error)
        ) {
          refused.push(row);
          refusal = ping.error;
        }
        break;
    }
  }
  counts.misconfigured += refused.length;
  if (refusal) await recordRefusal(ctx, refused, "ssm:DescribeInstanceInformation", refusal);

  if (stopped.length > 0) {
    const changed = await transition(ctx.deps.db, {
      ids: stopped.map((r) => r.id),
      from: ["online", "degraded"],
      to: "offline",
      where: sameInstance(stopped),
      reason: "instance stopped",
      actor: passActor(ctx, "liveness"),
    });
    counts.changed += changed.length;
  }
  if (lost.length > 0) {
    const reason = `instance running, but its SSM agent has not been Online for over ${ctx.deps.config.degradedAfterSeconds}s: commands cannot reach it`;
    const changed = await transition(ctx.deps.db, {
      ids: lost.map((r) => r.id),
      from: ["online"],
      to: "degraded",
      where: sameInstance(lost),
      reason,
      actor: passActor(ctx, "liveness"),
      set: { lastError: reason },
    });
    counts.changed += changed.length;
  }
  if (back.length > 0) {
    const changed = await transition(ctx.deps.db, {
      ids: back.map((r) => r.id),
      from: ["degraded"],
      to: "online",
      where: sameInstance(back),
      reason: "SSM agent Online again",
      actor: passActor(ctx, "liveness"),
      set: { lastError: null },
    });
    counts.changed += changed.length;
  }
}

/**
 * What SSM says of a running instance's agent: `online`; `lost` — not Online, and its last ping
 * (or, when SSM no longer lists the instance, the row's last change) is older than the setting;
 * `recently` — not Online, but not for long enough to act; `unknown` — SSM could not be asked.
 */
function agentSeen(
  ping: PingResult | undefined,
  row: WorkspaceRow,
  now: number,
  degradedAfterMs: number,
): "online" | "lost" | "recently" | "unknown" {
  if (ping === undefined || ping.kind === "transient") return "unknown";
  if (ping.status === "Online") return "online";
  const since = (ping.lastPingAt ?? row.updatedAt).getTime();
  return now - since > degradedAfterMs ? "lost" : "recently";
}
