import { and, inArray, isNotNull, ne, sql } from "drizzle-orm";
import { PARALLEL_CALLS } from "../compute/instances.js";
import { startInstance, stopInstance } from "../compute/power.js";
import { type WorkspaceRow, workspaces } from "../db/schema.js";
import { afterStart, afterStop } from "../workspaces/lifecycle.js";
import { workspaceBatches } from "./batches.js";
import { gone, goneError, POWER_STATUSES, powerBatch, type Redrive } from "./power-batch.js";
import { type PassContext, type PassCounts, passActor, zeroCounts } from "./types.js";

// A stop or start EC2 has not acted on this long after it was asked is asked again (both calls
// are idempotent): a lost answer, or a call that failed transiently in its request.
const REDRIVE_AFTER_MS = 30_000;

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
    await powerBatch(ctx, rows, counts, redrive);
  }
  return counts;
}

const stale = (ctx: PassContext, row: WorkspaceRow) =>
  ctx.deps.clock.now().getTime() - row.updatedAt.getTime() >= REDRIVE_AFTER_MS;

/**
 * The sweep's re-drive of a row the check left as it was: a stop or start EC2 has not acted on,
 * and a start whose instance vanished (relaunched). True when something changed.
 */
const redrive: Redrive = async (ctx, row, check) => {
  const { deps } = ctx;
  const instanceId = row.instanceId ?? "";
  switch (row.status) {
    case "stopping": {
      if (check.outcome === "running" && stale(ctx, row)) {
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
    default:
      return false;
  }
};

/** Keeps a re-driven intent from being re-driven again at once (the next run waits a while). */
async function touch(ctx: PassContext, row: WorkspaceRow) {
  await ctx.deps.db.execute(sql`
    update workspaces set updated_at = now()
    where id = ${row.id} and status = ${row.status} and instance_id = ${row.instanceId}`);
}
