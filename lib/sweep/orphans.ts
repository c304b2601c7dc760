import { inArray } from "drizzle-orm";
import { listDeploymentInstances, type TaggedInstance } from "../compute/instances.js";
import { clientTokenFor, terminateInstance } from "../compute/launch.js";
import { workspaces } from "../db/schema.js";
import { isUuid } from "../workspaces/queries.js";
import {
  forEachInBudget,
  noteRefusal,
  type PassContext,
  type PassCounts,
  zeroCounts,
} from "./types.js";

interface Owner {
  id: string;
  status: string;
  instanceId: string | null;
  generation: number;
}

/**
 * Orphans: this deployment's instances (tag filters, so another deployment's are never seen) that
 * no workspace owns — terminated. Acts only on a complete listing: a failed DescribeInstances page
 * fails the pass, it never terminates on a partial view.
 *
 * Ownership follows the ClientToken, not only the recorded id: an instance is its workspace's
 * while that workspace is not removed and either names it or is at the generation whose
 * ClientToken launched it — an answer lost between EC2 and us leaves the row without the id, and
 * that instance must survive until the launch pass or readiness adopts it. The listing is taken
 * before the rows are read, and a row moves to a new generation before it launches under it, so
 * a row read here is never older than an instance listed here.
 *
 * A removed workspace's instances go at once (nothing bills after delete); the others only once
 * launched more than `LAUNCH_GRACE_SECONDS` ago.
 */
export async function sweepOrphans(ctx: PassContext): Promise<PassCounts> {
  const counts = zeroCounts();
  const { deps } = ctx;
  const instances = await listDeploymentInstances(deps);
  counts.checked = instances.length;
  const live = instances.filter((i) => i.state !== "shutting-down");
  if (live.length === 0) return counts;

  const ids = [
    ...new Set(
      live.map((i) => i.workspaceId).filter((id): id is string => id !== null && isUuid(id)),
    ),
  ];
  const owners = new Map<string, Owner>();
  for (let i = 0; i < ids.length; i += 1000) {
    const rows = await deps.db
      .select({
        id: workspaces.id,
        status: workspaces.status,
        instanceId: workspaces.instanceId,
        generation: workspaces.generation,
      })
      .from(workspaces)
      .where(inArray(workspaces.id, ids.slice(i, i + 1000)));
    for (const r of rows) owners.set(r.id, r);
  }

  const graceMs = deps.config.launchGraceSeconds * 1000;
  const now = deps.clock.now().getTime();
  const orphans = live.filter((i) => {
    const owner = i.workspaceId === null ? undefined : owners.get(i.workspaceId);
    if (owner?.status === "removed") return true;
    if (owner && ownsInstance(owner, i)) return false;
    return i.launchedAt !== null && now - i.launchedAt.getTime() >= graceMs;
  });
  await forEachInBudget(ctx, orphans, 4, async (orphan) => {
    const result = await terminateInstance(deps, orphan.instanceId, orphan.launchedAt);
    if (result.kind === "terminated") {
      counts.changed++;
      deps.log.info("orphan terminated", {
        instanceId: orphan.instanceId,
        workspaceId: orphan.workspaceId,
      });
    } else {
      counts.transient++;
      if (noteRefusal(ctx, "ec2:TerminateInstances", result.error)) counts.misconfigured++;
    }
  });
  return counts;
}

/** The recorded instance, or one launched under the workspace's current ClientToken. */
function ownsInstance(owner: Owner, instance: TaggedInstance): boolean {
  return (
    owner.instanceId === instance.instanceId ||
    instance.clientToken === clientTokenFor(owner.id, owner.generation)
  );
}
