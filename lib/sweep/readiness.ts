import { and, eq, isNotNull, ne } from "drizzle-orm";
import { pingStatus } from "../compute/commands.js";
import { checkInstances, forEachBounded } from "../compute/instances.js";
import { type WorkspaceRow, workspaces } from "../db/schema.js";
import { transition } from "../workspaces/transition.js";
import { sameInstance, workspaceBatches } from "./batches.js";
import { type PassContext, type PassCounts, zeroCounts } from "./types.js";

/**
 * Readiness: a `provisioning` workspace whose instance is `running` and whose SSM agent is
 * `Online` goes `online` — commands can reach it from now on. An instance that is definitely
 * `stopped` while provisioning goes `failed`. Anything uncertain waits for the next run.
 */
export async function sweepReadiness(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const where = and(
    eq(workspaces.status, "provisioning"),
    ne(workspaces.runtime, "external"),
    isNotNull(workspaces.instanceId),
  );
  for await (const rows of workspaceBatches(ctx, where)) {
    counts.checked += rows.length;
    const checks = await checkInstances(
      ctx.deps,
      rows.map((r) => r.instanceId ?? ""),
      { launchedAt: new Map(rows.map((r) => [r.instanceId ?? "", r.launchedAt])) },
    );
    const running: WorkspaceRow[] = [];
    const dead: WorkspaceRow[] = [];
    for (const row of rows) {
      const check = checks.get(row.instanceId ?? "");
      switch (check?.outcome) {
        case "running":
          running.push(row);
          break;
        case "stopped":
          dead.push(row);
          break;
        case "transient":
        case undefined:
          counts.transient++;
          break;
        default: {
          const unreachable: never = check;
          throw new Error(`unhandled outcome ${JSON.stringify(unreachable)}`);
        }
      }
    }
    const ready: WorkspaceRow[] = [];
    await forEachBounded(running, 4, async (row) => {
      const ping = await pingStatus(ctx.deps, row.instanceId ?? "");
      if (ping.kind === "known" && ping.status === "Online") ready.push(row);
      else if (ping.kind === "transient") counts.transient++;
    });
    if (ready.length > 0) {
      const changed = await transition(ctx.deps.db, {
        ids: ready.map((r) => r.id),
        from: ["provisioning"],
        to: "online",
        where: sameInstance(ready),
        reason: "instance running and agent online",
        actor: "sweep:readiness",
      });
      counts.changed += changed.length;
    }
    if (dead.length > 0) {
      const changed = await transition(ctx.deps.db, {
        ids: dead.map((r) => r.id),
        from: ["provisioning"],
        to: "failed",
        where: sameInstance(dead),
        reason: "instance stopped while provisioning",
        actor: "sweep:readiness",
        set: { lastError: "instance stopped while provisioning" },
      });
      counts.changed += changed.length;
    }
  }
  return counts;
}
