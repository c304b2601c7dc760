import { terminateInstance } from "../compute/launch.js";
import type { WorkspaceStatus } from "../db/schema.js";
import type { Deps } from "../deps.js";
import { reapplyPlugins } from "../plugins/records.js";
import { type LaunchResult, launchWorkspace } from "./launch.js";
import type { WorkspaceRow } from "./model.js";
import { getWorkspace } from "./queries.js";
import { instanceToken, instanceTokenKey, replaceTokens } from "./tokens.js";
import { transition } from "./transition.js";

const RESTARTABLE: readonly WorkspaceStatus[] = [
  "provisioning",
  "online",
  "degraded",
  "offline",
  "failed",
];

export type RestartResult =
  | LaunchResult
  | { kind: "conflict"; row: WorkspaceRow }
  /** A DELETE won the race: the workspace is removing or removed; nothing was launched. */
  | { kind: "removed"; row: WorkspaceRow };

/**
 * `POST /workspaces/:id/restart`: moves the row to a new generation without an instance (so the
 * old instance is no longer the workspace's — if terminating it fails now, the orphan pass
 * terminates it later and nothing leaks), terminates the old instance, launches the new one.
 * The old instance is terminated even when a DELETE wins the race meanwhile: the removal found
 * the row without an instance and terminated nothing.
 *
 * @throws InstanceTokenKeyError when the deployment has no key to derive the new instance's
 *   token from; nothing is changed.
 */
export async function restartWorkspace(deps: Deps, row: WorkspaceRow): Promise<RestartResult> {
  const key = instanceTokenKey(deps.config);
  const [changed] = await transition(deps.db, {
    ids: [row.id],
    from: RESTARTABLE,
    to: "provisioning",
    instanceId: row.instanceId,
    reason: "restart requested",
    actor: "api",
    set: { bumpGeneration: true, instanceId: null, launchedAt: null, lastError: null },
  });
  if (!changed) {
    const fresh = await getWorkspace(deps.db, row.id);
    if (!fresh || fresh.status === "removing" || fresh.status === "removed") {
      return { kind: "removed", row: fresh ?? row };
    }
    return { kind: "conflict", row };
  }
  const next = changed.row;
  // The new instance starts empty: its plugins are to be installed again (the sweep sends them
  // once it is online), and the old instance's commands no longer say anything about them.
  await reapplyPlugins(deps.db, next.id);
  // The new instance gets a new token; the old instance's token dies with it. A DELETE that won
  // the race since the transition leaves nothing to launch for.
  const stored = await replaceTokens(
    deps.db,
    next.id,
    instanceToken(key, next.id, next.generation),
    next.generation,
  );
  if (row.instanceId) {
    const terminated = await terminateInstance(deps, row.instanceId, row.launchedAt);
    if (terminated.kind === "transient") {
      deps.log.warn("restart: old instance not terminated yet; the orphan pass will", {
        workspaceId: row.id,
        instanceId: row.instanceId,
        error: terminated.error,
      });
    }
  }
  if (!stored) return { kind: "removed", row: (await getWorkspace(deps.db, next.id)) ?? next };
  return launchWorkspace(deps, next, "api");
}
