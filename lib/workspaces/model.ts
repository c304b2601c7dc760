import type { WorkspaceRow, WorkspaceStatus } from "../db/schema.js";

export type { WorkspaceRow, WorkspaceStatus };

/**
 * Who changed a status: the API, a sweep pass, the workspace's own agent, or a sweep pass's rules
 * run on one instance because EC2 announced a state change (`ec2-event:<pass>`).
 */
export type Actor = "api" | "agent" | `sweep:${string}` | `ec2-event:${string}`;

export const isExternal = (w: Pick<WorkspaceRow, "runtime">) => w.runtime === "external";

/** Statuses from which nothing but removal can follow. */
export const TERMINAL_STATUSES: readonly WorkspaceStatus[] = ["removing", "removed"];

/**
 * The API's view of a workspace (what {@link toApi} returns). A plain type: its OpenAPI schema,
 * which must agree with it, lives with the routes (lib/http/workspace-schema.ts), so the
 * domain — and the sweep, which imports it — carries no HTTP or OpenAPI code.
 */
export interface Workspace {
  id: string;
  name: string;
  runtime: string;
  tier: number;
  status: WorkspaceStatus;
  instanceId: string | null;
  generation: number;
  launchedAt: string | null;
  lastHeartbeatAt: string | null;
  lastError: string | null;
  envKeys: string[];
  hibernation: boolean;
  stoppedReason: "user" | "idle" | null;
  hibernated: boolean;
  idleStopSeconds: number;
  idleAction: "stop" | "hibernate";
  lastActivityAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/** The deployment's idle auto-stop defaults (IDLE_STOP_SECONDS, IDLE_ACTION). */
export interface IdleDefaults {
  idleStopSeconds: number;
  idleAction: "stop" | "hibernate";
}

export function idleActionOf(
  row: Pick<WorkspaceRow, "idleAction">,
  defaults?: IdleDefaults,
): "stop" | "hibernate" {
  const action = row.idleAction ?? defaults?.idleAction ?? "stop";
  return action === "hibernate" ? "hibernate" : "stop";
}

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

/**
 * The API's view of a row: camelCase, ISO timestamps, the env's keys but never its values, and
 * the idle settings in effect (the row's own, else the deployment's defaults).
 */
export function toApi(row: WorkspaceRow, defaults?: IdleDefaults): Workspace {
  return {
    id: row.id,
    name: row.name,
    runtime: row.runtime,
    tier: row.tier,
    status: row.status,
    instanceId: row.instanceId,
    generation: row.generation,
    launchedAt: iso(row.launchedAt),
    lastHeartbeatAt: iso(row.lastHeartbeatAt),
    lastError: row.lastError,
    envKeys: Object.keys(row.env).sort(),
    hibernation: row.hibernation,
    stoppedReason:
      row.stoppedReason === "user" || row.stoppedReason === "idle" ? row.stoppedReason : null,
    hibernated: row.hibernated,
    idleStopSeconds: row.idleStopSeconds ?? defaults?.idleStopSeconds ?? 0,
    idleAction: idleActionOf(row, defaults),
    lastActivityAt: iso(row.lastActivityAt),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

const toDate = (v: unknown): Date | null =>
  v === null || v === undefined ? null : v instanceof Date ? v : new Date(String(v));

const toEnv = (v: unknown): Record<string, string> => {
  if (typeof v === "string") return JSON.parse(v) as Record<string, string>;
  return (v ?? {}) as Record<string, string>;
};

/**
 * Maps a raw `workspaces` row (snake_case, as returned by hand-written SQL) to the typed row.
 * The drivers differ in how they return some types, so each column is normalised here.
 */
export function fromRaw(r: Record<string, unknown>): WorkspaceRow {
  return {
    id: String(r.id),
    name: String(r.name),
    runtime: String(r.runtime),
    tier: Number(r.tier),
    status: r.status as WorkspaceStatus,
    instanceId: (r.instance_id as string | null) ?? null,
    generation: Number(r.generation),
    launchedAt: toDate(r.launched_at),
    lastHeartbeatAt: toDate(r.last_heartbeat_at),
    lastError: (r.last_error as string | null) ?? null,
    env: toEnv(r.env),
    idempotencyKey: (r.idempotency_key as string | null) ?? null,
    requestHash: (r.request_hash as string | null) ?? null,
    hibernation: r.hibernation === true || r.hibernation === "t",
    stoppedReason: (r.stopped_reason as string | null) ?? null,
    hibernated: r.hibernated === true || r.hibernated === "t",
    idleStopSeconds:
      r.idle_stop_seconds === null || r.idle_stop_seconds === undefined
        ? null
        : Number(r.idle_stop_seconds),
    idleAction: (r.idle_action as string | null) ?? null,
    lastActivityAt: toDate(r.last_activity_at),
    createdAt: toDate(r.created_at) ?? new Date(0),
    updatedAt: toDate(r.updated_at) ?? new Date(0),
  };
}
