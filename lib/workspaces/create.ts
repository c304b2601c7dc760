import { createHash } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { workspaces } from "../db/schema.js";
import type { Deps } from "../deps.js";
import { fromRaw, type WorkspaceRow } from "./model.js";
import { instanceToken, instanceTokenKey, type MintedToken, mintToken } from "./tokens.js";
import { rowsOf } from "./transition.js";

export interface CreateWorkspaceInput {
  name: string;
  runtime: string;
  tier: number;
  env: Record<string, string>;
  idempotencyKey?: string;
  /** Launch able to hibernate (instance-backed only). */
  hibernation?: boolean;
  /** Idle auto-stop; unset: the deployment's defaults. */
  idleStopSeconds?: number;
  idleAction?: "stop" | "hibernate";
}

export type CreateWorkspaceResult =
  | { kind: "created"; row: WorkspaceRow; token: MintedToken }
  | { kind: "replayed"; row: WorkspaceRow }
  | { kind: "key_reused" };

/** A stable hash of what was asked for, so a replayed key can be told from a reused one. */
function requestHash(input: CreateWorkspaceInput): string {
  const env = Object.fromEntries(Object.entries(input.env).sort(([a], [b]) => a.localeCompare(b)));
  const canonical = JSON.stringify([
    input.name,
    input.runtime,
    input.tier,
    env,
    input.hibernation ?? false,
    input.idleStopSeconds ?? null,
    input.idleAction ?? null,
  ]);
  return createHash("sha256").update(canonical).digest("hex");
}

/**
 * Creates the row, its first event and its first token in one statement. An external workspace
 * starts `awaiting_agent` with a random token for the caller; an instance-backed one starts
 * `provisioning` (generation 1) with the derived token its instance will be launched with.
 *
 * With an `Idempotency-Key`, concurrent duplicates race on the unique key: exactly one insert
 * wins and the others read the winner's row back.
 *
 * @throws InstanceTokenKeyError for an instance-backed workspace when the deployment has no key
 *   to derive instance tokens from; nothing is written.
 */
export async function createWorkspace(
  deps: Deps,
  input: CreateWorkspaceInput,
): Promise<CreateWorkspaceResult> {
  const external = input.runtime === "external";
  const id = crypto.randomUUID();
  const generation = external ? 0 : 1;
  // Without a key this throws before anything is written: no workspace waits for a launch that
  // could only carry a guessable token.
  const token = external
    ? mintToken()
    : instanceToken(instanceTokenKey(deps.config), id, generation);
  const hash = input.idempotencyKey === undefined ? null : requestHash(input);
  const status = external ? "awaiting_agent" : "provisioning";

  const result = await deps.db.execute(sql`
    with w as (
      insert into workspaces (id, name, runtime, tier, status, generation, env, idempotency_key,
                              request_hash, hibernation, idle_stop_seconds, idle_action)
      values (${id}, ${input.name}, ${input.runtime}, ${input.tier}, ${status}, ${generation},
              ${JSON.stringify(input.env)}::jsonb, ${input.idempotencyKey ?? null}, ${hash},
              ${input.hibernation ?? false}, ${input.idleStopSeconds ?? null}::int,
              ${input.idleAction ?? null})
      on conflict (idempotency_key) do nothing
      returning *
    ),
    ev as (
      insert into workspace_events (workspace_id, type, "from", "to", reason, actor, data)
      select id, 'workspace.created', null, status, 'created', 'api',
        jsonb_build_object('name', name, 'runtime', runtime, 'tier', tier) from w
    ),
    tok as (
      insert into workspace_tokens (workspace_id, token_hash, prefix, generation)
      select id, ${token.hash}, ${token.prefix}, ${external ? null : generation}::int from w
    )
    select * from w`);
  const created = rowsOf(result)[0];
  if (created) return { kind: "created", row: fromRaw(created), token };

  // The key exists already: the same request replays, a different one is refused.
  const [existing] = await deps.db
    .select()
    .from(workspaces)
    .where(eq(workspaces.idempotencyKey, input.idempotencyKey ?? ""));
  if (!existing) throw new Error("idempotency key conflict without a row");
  return existing.requestHash === hash
    ? { kind: "replayed", row: existing }
    : { kind: "key_reused" };
}
