import { sql } from "drizzle-orm";
import type { WorkspaceStatus } from "../db/schema.js";
import type { Deps } from "../deps.js";
import { rowsOf, transition } from "./transition.js";

/** Statuses an agent's registration brings online. */
const REGISTERABLE: readonly WorkspaceStatus[] = [
  "awaiting_agent",
  "provisioning",
  "offline",
  "degraded",
  // A late agent is still an agent: provision timeout gave up on it, its arrival is good news.
  "failed",
];

export type AgentResult = { kind: "ok"; status: WorkspaceStatus } | { kind: "not_found" };

/**
 * `POST /registry/register`: the agent announces itself → `online` with a heartbeat. Already
 * online: only the heartbeat moves. Removing/removed workspaces stay as they are (their tokens are
 * revoked, so this is reached only in a race) and the current status is answered.
 */
export async function registerAgent(deps: Deps, workspaceId: string): Promise<AgentResult> {
  const [changed] = await transition(deps.db, {
    ids: [workspaceId],
    from: REGISTERABLE,
    to: "online",
    reason: "agent registered",
    actor: "agent",
    set: { lastHeartbeatAt: "now" },
  });
  if (changed) return { kind: "ok", status: changed.row.status };
  return heartbeat(deps, workspaceId);
}

/**
 * `POST /registry/heartbeat`: records the beat on the database clock; an `offline` workspace comes
 * back `online` (with its event). One statement either way.
 */
export async function heartbeat(deps: Deps, workspaceId: string): Promise<AgentResult> {
  const result = await deps.db.execute(sql`
    with prev as (
      select id, status as prev_status from workspaces where id = ${workspaceId} for update
    ),
    upd as (
      update workspaces w set
        last_heartbeat_at = now(),
        status = case when prev.prev_status = 'offline' then 'online'::workspace_status else w.status end,
        updated_at = case when prev.prev_status = 'offline' then now() else w.updated_at end
      from prev where w.id = prev.id and prev.prev_status not in ('removing', 'removed')
      returning w.id, w.status, prev.prev_status
    ),
    ev as (
      insert into workspace_events (workspace_id, "from", "to", reason, actor)
      select id, prev_status, status, 'heartbeat resumed', 'agent' from upd
      where prev_status = 'offline'
    )
    select (select status from upd) as status, (select prev_status from prev) as prev_status`);
  const row = rowsOf(result)[0];
  if (!row || row.prev_status === null || row.prev_status === undefined)
    return { kind: "not_found" };
  return { kind: "ok", status: (row.status ?? row.prev_status) as WorkspaceStatus };
}
