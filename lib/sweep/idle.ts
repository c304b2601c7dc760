import { sql } from "drizzle-orm";
import { stopInstance } from "../compute/power.js";
import { afterStop } from "../workspaces/lifecycle.js";
import { transition } from "../workspaces/transition.js";
import {
  forEachInBudget,
  hasTimeForBatch,
  noteRefusal,
  type PassContext,
  type PassCounts,
  zeroCounts,
} from "./types.js";

/**
 * Idle auto-stop: instance-backed `online`/`degraded` workspaces with no real work (a busy
 * heartbeat, a plugin operation, a command, `POST …/activity`) for longer than their
 * `idleStopSeconds` (or IDLE_STOP_SECONDS; 0 = never) are stopped — or hibernated, when their
 * idle action says so and they were launched able to — with the reason `idle`.
 *
 * Per batch: one conditional statement picks and marks the idle rows `stopping` (the idleness
 * is re-checked on the row as it is when locked, so a busy heartbeat committed in the same moment
 * wins), then StopInstances per row, a few at a time. Idleness is measured on the database clock
 * from the later of the last activity and the last status change (a workspace that just came
 * online has not been idle for long). A command or a plugin operation still in flight is work
 * however long ago it began: its workspace is never idle (its record ends by its own timeout or
 * the sweep).
 */
export async function sweepIdle(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const { config } = ctx.deps;
  const idle = sql`w.runtime <> 'external' and w.instance_id is not null
    and coalesce(w.idle_stop_seconds, ${config.idleStopSeconds}::int) > 0
    and greatest(coalesce(w.last_activity_at, w.updated_at), w.updated_at)
      < now() - make_interval(secs => coalesce(w.idle_stop_seconds, ${config.idleStopSeconds}::int))
    and not exists (select 1 from workspace_commands c
      where c.workspace_id = w.id and c.status in ('pending', 'running'))
    and not exists (select 1 from workspace_plugins p
      where p.workspace_id = w.id and p.state in ('installing', 'uninstalling'))`;
  while (hasTimeForBatch(ctx.budget)) {
    const picked = await transition(ctx.deps.db, {
      ids: "matching",
      from: ["online", "degraded"],
      to: "stopping",
      where: idle,
      limit: ctx.batchSize,
      reason: "idle: stop requested by the sweep",
      actor: "sweep:idle",
      set: { stoppedReason: "idle", lastError: null },
    });
    counts.checked += picked.length;
    await forEachInBudget(ctx, picked, 4, async ({ row }) => {
      const hibernate = row.hibernation && (row.idleAction ?? config.idleAction) === "hibernate";
      if (hibernate) {
        await ctx.deps.db.execute(
          sql`update workspaces set hibernated = true where id = ${row.id} and status = 'stopping'`,
        );
      }
      const outcome = await stopInstance(ctx.deps, row.instanceId ?? "", row.launchedAt, {
        hibernate,
      });
      if (outcome.kind === "transient") {
        counts.transient++;
        if (noteRefusal(ctx, "ec2:StopInstances", outcome.error)) counts.misconfigured++;
      } else {
        counts.changed++;
      }
      await afterStop(ctx.deps, { ...row, hibernated: hibernate }, outcome, "sweep:idle");
    });
    if (picked.length < ctx.batchSize) break;
  }
  return counts;
}
