import { z } from "@hono/zod-openapi";
import { WORKSPACE_STATUSES, type WorkspaceRow, type WorkspaceStatus } from "../db/schema.js";

export type { WorkspaceRow, WorkspaceStatus };

/** Who changed a status: the API, a sweep pass, or the workspace's own agent. */
export type Actor = "api" | "agent" | `sweep:${string}`;

export const isExternal = (w: Pick<WorkspaceRow, "runtime">) => w.runtime === "external";

/** Statuses from which nothing but removal can follow. */
export const TERMINAL_STATUSES: readonly WorkspaceStatus[] = ["removing", "removed"];

export const WorkspaceSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    runtime: z.string(),
    tier: z.number().int(),
    status: z.enum(WORKSPACE_STATUSES),
    instanceId: z.string().nullable(),
    generation: z.number().int(),
    launchedAt: z.string().nullable(),
    lastHeartbeatAt: z.string().nullable(),
    lastError: z.string().nullable(),
    envKeys: z.array(z.string()),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Workspace");
export type Workspace = z.infer<typeof WorkspaceSchema>;

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

/** The API's view of a row: camelCase, ISO timestamps, the env's keys but never its values. */
export function toApi(row: WorkspaceRow): Workspace {
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
    createdAt: toDate(r.created_at) ?? new Date(0),
    updatedAt: toDate(r.updated_at) ?? new Date(0),
  };
}
