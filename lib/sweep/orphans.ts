import { inArray } from "drizzle-orm";
import { forEachBounded, listDeploymentInstances } from "../compute/instances.js";
import { terminateInstance } from "../compute/launch.js";
import { workspaces } from "../db/schema.js";
import { isUuid } from "../workspaces/queries.js";
import { type PassContext, type PassCounts, zeroCounts } from "./types.js";

/**
 * Orphans: this deployment's instances (tag filters, so another deployment's are never seen) that
 * no workspace owns any more — the workspace is missing or removed, or has moved on to another
 * instance — and that were launched more than `LAUNCH_GRACE_SECONDS` ago (a launch in flight has
 * not recorded its instance id yet). Terminated. Acts only on a complete listing: a failed
 * DescribeInstances page fails the pass, it never terminates on a partial view.
 */
export async function sweepOrphans(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const { deps } = ctx;
  const instances = await listDeploymentInstances(deps);
  counts.checked = instances.length;
  const graceMs = deps.config.launchGraceSeconds * 1000;
  const now = deps.clock.now().getTime();
  const candidates = instances.filter(
    (i) =>
      i.state !== "shutting-down" &&
      i.launchedAt !== null &&
      now - i.launchedAt.getTime() >= graceMs,
  );
  if (candidates.length === 0) return counts;

  const ids = [
    ...new Set(
      candidates.map((i) => i.workspaceId).filter((id): id is string => id !== null && isUuid(id)),
    ),
  ];
  const owners = new Map<string, { status: string; instanceId: string | null }>();
  for (let i = 0; i < ids.length; i += 1000) {
    const rows = await deps.db
      .select({ id: workspaces.id, status: workspaces.status, instanceId: workspaces.instanceId })
      .from(workspaces)
      .where(inArray(workspaces.id, ids.slice(i, i + 1000)));
    for (const r of rows) owners.set(r.id, r);
  }

  const orphans = candidates.filter((i) => {
    const owner = i.workspaceId === null ? undefined : owners.get(i.workspaceId);
    return !owner || owner.status === "removed" || owner.instanceId !== i.instanceId;
  });
  await forEachBounded(orphans, 4, async (orphan) => {
    const result = await terminateInstance(deps, orphan.instanceId, orphan.launchedAt);
    if (result.kind === "terminated") {
      counts.changed++;
      deps.log.info("orphan terminated", {
        instanceId: orphan.instanceId,
        workspaceId: orphan.workspaceId,
      });
    } else {
      counts.transient++;
    }
  });
  return counts;
}
