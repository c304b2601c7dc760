import { sql } from "drizzle-orm";
import { findByClientToken, type TokenInstance } from "../compute/instances.js";
import { clientTokenFor } from "../compute/launch.js";
import type { WorkspaceStatus } from "../db/schema.js";
import type { Deps } from "../deps.js";
import { recordInstance } from "./launch.js";
import { isExternal } from "./model.js";
import { getWorkspace } from "./queries.js";
import { rowsOf, transition } from "./transition.js";

/**
 * Statuses an agent's registration brings online. Not `degraded`: that says SSM cannot reach the
 * instance's agent, which an HTTP registration does not disprove; the liveness pass clears it when
 * SSM sees the agent again.
 */
const REGISTERABLE: readonly WorkspaceStatus[] = [
  "awaiting_agent",
  "provisioning",
  "offline",
  // A late agent is still an agent: provision timeout gave up on it, its arrival is good news.
  "failed",
];

export type AgentResult = { kind: "ok"; status: WorkspaceStatus } | { kind: "not_found" };

/**
 * `POST /registry/register`: the agent announces itself → `online` with a heartbeat. Already
 * online: only the heartbeat moves. Removing/removed workspaces stay as they are (their tokens
 * no longer authenticate, so this is reached only in a race) and the current status is answered.
 *
 * An instance-backed workspace goes online only with its instance recorded. When the launch's
 * answer was lost the row names none yet, though the agent calling is running on it: the
 * instance is looked up by the workspace's current ClientToken and adopted. If EC2 does not list
 * it yet (eventual consistency) or cannot answer, the beat is recorded and the status stays —
 * the sweep's launch pass adopts the instance and readiness brings the workspace online.
 */
export async function registerAgent(
  deps: Deps,
  workspaceId: string,
  opts: { busy?: boolean } = {},
): Promise<AgentResult> {
  const row = await getWorkspace(deps.db, workspaceId);
  if (!row) return { kind: "not_found" };
  if (!isExternal(row) && row.instanceId === null && row.status === "provisioning") {
    let found: TokenInstance | null = null;
    try {
      found = await findByClientToken(deps, clientTokenFor(row.id, row.generation));
    } catch (err) {
      deps.log.warn("registration: instance lookup by ClientToken failed", {
        workspaceId,
        error: err instanceof Error ? err.name : String(err),
      });
    }
    if (found) {
      await recordInstance(deps, row, found, "agent", {
        reason: `instance ${found.instanceId} adopted by its ClientToken (its agent registered)`,
      });
    }
  }
  const [changed] = await transition(deps.db, {
    ids: [workspaceId],
    from: REGISTERABLE,
    to: "online",
    reason: "agent registered",
    actor: "agent",
    set: { lastHeartbeatAt: "now" },
  });
  if (changed && !opts.busy) return { kind: "ok", status: changed.row.status };
  return heartbeat(deps, workspaceId, opts);
}

/**
 * `POST /registry/heartbeat`: records the beat on the database clock; an `offline` workspace comes
 * back `online` (with its event) — an instance-backed one only while it names its instance. One
 * statement either way.
 */
export async function heartbeat(
  deps: Deps,
  workspaceId: string,
  opts: { busy?: boolean } = {},
): Promise<AgentResult> {
  // A busy beat is real work (idle auto-stop waits); an idle beat only keeps the workspace alive.
  const busy = opts.busy === true;
  const result = await deps.db.execute(sql`
    with prev as (
      select id, status as prev_status,
        status = 'offline' and (runtime = 'external' or instance_id is not null) as revive
      from workspaces where id = ${workspaceId} for update
    ),
    upd as (
      update workspaces w set
        last_heartbeat_at = now(),
        last_activity_at = case when ${busy} then now() else w.last_activity_at end,
        status = case when prev.revive then 'online'::workspace_status else w.status end,
        updated_at = case when prev.revive then now() else w.updated_at end
      from prev where w.id = prev.id and prev.prev_status not in ('removing', 'removed')
      returning w.id, w.status, prev.prev_status, prev.revive
    ),
    ev as (
      insert into workspace_events (workspace_id, "from", "to", reason, actor)
      select id, prev_status, status, 'heartbeat resumed', 'agent' from upd
      where revive
    )
    select (select status from upd) as status, (select prev_status from prev) as prev_status`);
  const row = rowsOf(result)[0];
  if (!row || row.prev_status === null || row.prev_status === undefined)
    return { kind: "not_found" };
  return { kind: "ok", status: (row.status ?? row.prev_status) as WorkspaceStatus };
}
