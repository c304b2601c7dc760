import { checkInstances, type InstanceCheck } from "../compute/instances.js";
import type { WorkspaceRow } from "../db/schema.js";
import { afterStop } from "../workspaces/lifecycle.js";
import { transition } from "../workspaces/transition.js";
import { sameInstance } from "./batches.js";
import {
  forEachInBudget,
  noteRefusal,
  type PassContext,
  type PassCounts,
  passActor,
} from "./types.js";

/** The statuses the power pass looks at (the sweep's query and the EC2-event path alike). */
export const POWER_STATUSES = ["stopping", "starting", "stopped"] as const;

/**
 * A row's next step when the check confirmed nothing to record: ask EC2 again. True when
 * something changed.
 */
export type Redrive = (
  ctx: PassContext,
  row: WorkspaceRow,
  check: InstanceCheck,
) => Promise<boolean>;

/**
 * The power pass over one batch of rows in {@link POWER_STATUSES} that name an instance, added to
 * `counts`: the sweep runs it page by page, the EC2-event path on the rows an event named. It
 * records what the running check confirms — stopped, hibernated, gone — and hands every other row
 * to `redrive`, which only the sweep passes: asking EC2 again (StopInstances, StartInstances, a
 * relaunch) lives in power.ts, so the EC2-event function neither bundles nor may send those calls.
 */
export async function powerBatch(
  ctx: PassContext,
  rows: readonly WorkspaceRow[],
  counts: PassCounts,
  redrive?: Redrive,
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
      if ((await confirm(ctx, row, check)) || (await redrive?.(ctx, row, check))) counts.changed++;
    } catch (err) {
      counts.errors++;
      ctx.deps.log.error("power pass failed on a workspace", {
        workspaceId: row.id,
        error: String(err),
      });
    }
  });
}

/**
 * What the check confirms without asking EC2 for anything: a `stopping` or `stopped` row whose
 * instance is gone lets go of it (a start launches a new one). True when something changed.
 */
async function confirm(ctx: PassContext, row: WorkspaceRow, check: InstanceCheck) {
  if (!gone(check)) return false;
  const instanceId = row.instanceId ?? "";
  switch (row.status) {
    case "stopping":
      await afterStop(
        ctx.deps,
        row,
        { kind: "gone", error: goneError(check) },
        passActor(ctx, "power"),
      );
      return true;
    case "stopped": {
      const [changed] = await transition(ctx.deps.db, {
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

/** The instance no longer exists (terminated, or not found past the launch grace). */
export const gone = (check: InstanceCheck) =>
  check.outcome === "stopped" && (check.state === "terminated" || check.state === "not-found");

/** Why a gone instance's intent ended, in the words of a power call's outcome. */
export function goneError(check: InstanceCheck) {
  const state = check.outcome === "stopped" ? check.state : "unknown";
  return { code: "InstanceGone", message: `EC2 reports the instance ${state}` };
}
