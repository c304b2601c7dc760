import { and, inArray, isNotNull, ne, sql } from "drizzle-orm";
import { checkInstances, type InstanceCheck, PARALLEL_CALLS } from "../compute/instances.js";
import { startInstance, stopInstance } from "../compute/power.js";
import { type WorkspaceRow, workspaces } from "../db/schema.js";
import { afterStart, afterStop } from "../workspaces/lifecycle.js";
import { transition } from "../workspaces/transition.js";
import { sameInstance, workspaceBatches } from "./batches.js";
import {
  forEachInBudget,
  noteRefusal,
  type PassContext,
  type PassCounts,
  passActor,
  zeroCounts,
} from "./types.js";

// A stop or start EC2 has not acted on this long after it was asked is asked again (both calls
// are idempotent): a lost answer, or a call that failed transiently in its request.
const REDRIVE_AFTER_MS = 30_000;

/** The statuses the power pass looks at (the sweep's query and the EC2-event path alike). */
export const POWER_STATUSES = ["stopping", "starting", "stopped"] as const;

export interface PowerOptions {
  /**
   * Whether this run may ask EC2 again (StopInstances, StartInstances, a relaunch of a vanished
   * instance). The sweep does; the EC2-event path only records what the running check confirms,
   * so its function needs no permission to change an instance, and the sweep re-drives the rest.
   */
  redrive: boolean;
}

/**
 * Power: what EC2 says of the instances of `stopping`, `starting` and `stopped` workspaces, by
 * the running check (⌈N/200⌉ calls per page) — never by assuming.
 *
 * - `stopping`: EC2 stopped → `stopped` (with whether EC2 hibernated it: StateReason
 *   `Client.UserInitiatedHibernate`); still running past a while → StopInstances again; gone →
 *   `stopped` with the instance let go of (a start launches a new one);
 * - `starting`: EC2 stopped past a while → StartInstances again (running: readiness takes it
 *   online); gone → relaunched under a new generation;
 * - `stopped`: gone → the row lets go of it, with an event and `lastError`, so a start relaunches.
 *
 * `transient` never acts. Liveness does not look at these rows: a stopped workspace is never
 * marked offline.
 */
export async function sweepPower(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const where = and(
    inArray(workspaces.status, [...POWER_STATUSES]),
    ne(workspaces.runtime, "external"),
    isNotNull(workspaces.instanceId),
  );
  const page = { ...ctx, batchSize: ctx.batchSize * PARALLEL_CALLS };
  for await (const rows of workspaceBatches(page, where)) {
    await powerBatch(ctx, rows, counts, { redrive: true });
  }
  return counts;
}

/**
 * The power pass over one batch of rows in {@link POWER_STATUSES} that name an instance, added to
 * `counts`: the sweep runs it page by page, the EC2-event path on the rows an event named.
 */
export async function powerBatch(
  ctx: PassContext,
  rows: readonly WorkspaceRow[],
  counts: PassCounts,
  opts: PowerOptions,
): Promise<void> {
  counts.checked += rows.length;
  const checks = await checkInstances(
    ctx.deps,
    rows.map((r) => r.instanceId ?? ""),
    { launchedAt: new Map(rows.map((r) => [r.instanceId ?? "", r.launchedAt])) },
  );
  const stoppedNow: WorkspaceRow[] = [];
  const hibernatedNow: WorkspaceRow[] = [];
  const work: { row: WorkspaceRow; check: InstanceCheck }[] = [];
  for (const row of rows) {
    const check = checks.get(row.instanceId ?? "");
    if (!check || check.outcome === "transient") {
      counts.transient++;
      if (check && noteRefusal(ctx, "ec2:DescribeInstances", check.error)) counts.misconfigured++;
      continue;
    }
    if (row.status === "stopping" && check.outcome === "stopped" && check.state === "stopped") {
      (check.reason === "Client.UserInitiatedHibernate" ? hibernatedNow : stoppedNow).push(row);
    } else {
      work.push({ row, check });
    }
  }
  for (const [batch, hibernated] of [
    [stoppedNow, false],
    [hibernatedNow, true],
  ] as const) {
    if (batch.length === 0) continue;
    const changed = await transition(ctx.deps.db, {
      ids: batch.map((r) => r.id),
      from: ["stopping"],
      to: "stopped",
      where: sameInstance(batch),
      reason: hibernated ? "instance hibernated" : "instance stopped",
      actor: passActor(ctx, "power"),
      set: { hibernated },
    });
    counts.changed += changed.length;
  }
  await forEachInBudget(ctx, work, 4, async ({ row, check }) => {
    try {
      if (await advance(ctx, row, check, opts)) counts.changed++;
    } catch (err) {
      counts.errors++;
      ctx.deps.log.error("power pass failed on a workspace", {
        workspaceId: row.id,
        error: String(err),
      });
    }
  });
}

const gone = (check: InstanceCheck) =>
  check.outcome === "stopped" && (check.state === "terminated" || check.state === "not-found");

const stale = (ctx: PassContext, row: WorkspaceRow) =>
  ctx.deps.clock.now().getTime() - row.updatedAt.getTime() >= REDRIVE_AFTER_MS;

/** One row's next step; true when something changed. */
async function advance(
  ctx: PassContext,
  row: WorkspaceRow,
  check: InstanceCheck,
  { redrive }: PowerOptions,
) {
  const { deps } = ctx;
  const instanceId = row.instanceId ?? "";
  switch (row.status) {
    case "stopping": {
      if (gone(check)) {
        await afterStop(
          deps,
          row,
          { kind: "gone", error: goneError(check) },
          passActor(ctx, "power"),
        );
        return true;
      }
      if (redrive && check.outcome === "running" && stale(ctx, row)) {
        // While stopping, `hibernated` holds what was asked for.
        const hibernate = row.hibernation && row.hibernated;
        await afterStop(
          deps,
          row,
          await stopInstance(deps, instanceId, row.launchedAt, { hibernate }),
          passActor(ctx, "power"),
        );
        await touch(ctx, row);
      }
      return false;
    }
    case "starting": {
      // A relaunch is a new launch: only the sweep does it.
      if (!redrive) return false;
      if (gone(check)) {
        await afterStart(
          deps,
          row,
          { kind: "gone", error: goneError(check) },
          passActor(ctx, "power"),
        );
        return true;
      }
      if (check.outcome === "stopped" && check.state === "stopped" && stale(ctx, row)) {
        await afterStart(
          deps,
          row,
          await startInstance(deps, instanceId, row.launchedAt),
          passActor(ctx, "power"),
        );
        await touch(ctx, row);
      }
      return false;
    }
    case "stopped": {
      if (!gone(check)) return false;
      const [changed] = await transition(deps.db, {
        ids: [row.id],
        from: ["stopped"],
        to: "stopped",
        instanceId,
        reason: "instance gone; a start launches a new one",
        actor: passActor(ctx, "power"),
        set: {
          instanceId: null,
          launchedAt: null,
          lastError: `instance ${instanceId} no longer exists (${check.outcome === "stopped" ? check.state : "?"})`,
        },
      });
      return changed !== undefined;
    }
    default:
      return false;
  }
}

/** Keeps a re-driven intent from being re-driven again at once (the next run waits a while). */
async function touch(ctx: PassContext, row: WorkspaceRow) {
  await ctx.deps.db.execute(sql`
    update workspaces set updated_at = now()
    where id = ${row.id} and status = ${row.status} and instance_id = ${row.instanceId}`);
}

function goneError(check: InstanceCheck) {
  const state = check.outcome === "stopped" ? check.state : "unknown";
  return { code: "InstanceGone", message: `EC2 reports the instance ${state}` };
}
