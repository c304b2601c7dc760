import { terminateInstance } from "../compute/launch.js";
import type { WorkspaceStatus } from "../db/schema.js";
import type { Deps } from "../deps.js";
import type { Actor, WorkspaceRow } from "./model.js";
import { getWorkspace } from "./queries.js";
import { revokeTokens } from "./tokens.js";
import { transition } from "./transition.js";

const REMOVABLE: readonly WorkspaceStatus[] = [
  "provisioning",
  "awaiting_agent",
  "online",
  "degraded",
  "offline",
  "failed",
];

export interface RemoveResult {
  row: WorkspaceRow;
  /** false: the workspace is `removing` and the sweep's removal pass will finish it. */
  done: boolean;
}

/**
 * `DELETE /workspaces/:id`: revoke every token, mark `removing`, terminate the instance, mark
 * `removed`. Idempotent: a removed workspace answers as it is; a `removing` one is driven on.
 */
export async function removeWorkspace(deps: Deps, row: WorkspaceRow): Promise<RemoveResult> {
  if (row.status === "removed") return { row, done: true };
  let current = row;
  if (row.status !== "removing") {
    const [changed] = await transition(deps.db, {
      ids: [row.id],
      from: REMOVABLE,
      to: "removing",
      reason: "removal requested",
      actor: "api",
    });
    if (changed) current = changed.row;
    else {
      // Another writer moved it first; drive on from wherever it is now.
      const fresh = await getWorkspace(deps.db, row.id);
      if (!fresh || fresh.status === "removed") return { row: fresh ?? row, done: true };
      current = fresh;
    }
  }
  // After the move to removing: a token minted or re-stored before it is revoked here, and none
  // can be written after it (replaceTokens refuses a removing workspace in the same statement).
  await revokeTokens(deps.db, row.id);
  return finishRemoval(deps, current, "api");
}

/**
 * Takes a `removing` workspace to `removed` once its instance is terminated. Shared by the route
 * and the sweep's removal pass. A transient termination failure leaves it `removing` (done:
 * false) for the next sweep; the row is never marked removed while its instance may still bill.
 */
export async function finishRemoval(
  deps: Deps,
  row: WorkspaceRow,
  actor: Actor,
): Promise<RemoveResult> {
  if (row.instanceId) {
    const terminated = await terminateInstance(deps, row.instanceId, row.launchedAt);
    if (terminated.kind === "transient") {
      deps.log.warn("removal: termination failed transiently", {
        workspaceId: row.id,
        instanceId: row.instanceId,
        error: terminated.error,
      });
      return { row, done: false };
    }
  }
  const [changed] = await transition(deps.db, {
    ids: [row.id],
    from: ["removing"],
    to: "removed",
    reason: "removed",
    actor,
  });
  if (changed) return { row: changed.row, done: true };
  const fresh = await getWorkspace(deps.db, row.id);
  return { row: fresh ?? row, done: fresh?.status === "removed" };
}
