import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { and, eq, isNull, sql } from "drizzle-orm";
import type { Db } from "../db/client.js";
import { workspaceTokens } from "../db/schema.js";
import { rowsOf } from "./transition.js";

/** A raw token, shown once, with what is stored of it. */
export interface MintedToken {
  token: string;
  hash: string;
  prefix: string;
}

export const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

const fromRaw = (token: string): MintedToken => ({
  token,
  hash: hashToken(token),
  prefix: token.slice(0, 8),
});

/** 32 random bytes, base64url. Only its sha256 and first 8 characters are ever stored. */
export function mintToken(): MintedToken {
  return fromRaw(randomBytes(32).toString("base64url"));
}

/**
 * No key to derive instance tokens from (`ADMIN_TOKEN` is unset or empty). Derivation refuses
 * rather than HMAC with an empty key: every instance token would then be computable by anyone
 * who knows a workspace id, and an instance's token speaks for its workspace.
 */
export class InstanceTokenKeyError extends Error {
  override name = "InstanceTokenKeyError";
  constructor() {
    super("no instance-token key: ADMIN_TOKEN is not set, so no instance can be launched");
  }
}

/**
 * The key instance tokens are derived from: the admin token (whoever holds it can already mint
 * tokens for every workspace).
 * @throws InstanceTokenKeyError when the deployment has none.
 */
export function instanceTokenKey(config: { adminToken: string | undefined }): string {
  if (config.adminToken === undefined || config.adminToken === "") {
    throw new InstanceTokenKeyError();
  }
  return config.adminToken;
}

/**
 * The token an instance of generation `generation` is launched with. It is derived, not random,
 * because a re-driven launch must send byte-identical user-data under the same ClientToken
 * (EC2 answers IdempotentParameterMismatch otherwise), and the raw token is never stored.
 * @throws InstanceTokenKeyError for an empty key: it fails closed, never a guessable token.
 */
export function instanceToken(key: string, workspaceId: string, generation: number): MintedToken {
  if (key === "") throw new InstanceTokenKeyError();
  const mac = createHmac("sha256", key).update(`instance-token:${workspaceId}:${generation}`);
  return fromRaw(mac.digest("base64url"));
}

/** Constant-time comparison of a presented token with the admin token (hashes equalise length). */
export function isAdminToken(presented: string, adminToken: string): boolean {
  return timingSafeEqual(
    createHash("sha256").update(presented).digest(),
    createHash("sha256").update(adminToken).digest(),
  );
}

/**
 * Resolves a presented workspace token to its workspace, marking it used. One round trip: the
 * lookup is by the token's sha256 (a unique index), so there is nothing to time.
 *
 * The token must be live, its workspace neither `removing` nor `removed` (whatever raced the
 * revocation, a removed workspace's token never works), and an instance's token must belong to
 * the workspace's current generation (an agent on a replaced instance cannot speak for it).
 */
export async function authenticateWorkspaceToken(
  db: Db,
  presented: string,
): Promise<{ workspaceId: string; prefix: string } | null> {
  // Tokens are 43 base64url characters; anything else cannot match and costs no query.
  if (!/^[A-Za-z0-9_-]{43}$/.test(presented)) return null;
  const result = await db.execute(sql`
    update workspace_tokens t set last_used_at = now()
    from workspaces w
    where t.token_hash = ${hashToken(presented)} and t.revoked_at is null
      and w.id = t.workspace_id and w.status not in ('removing', 'removed')
      and (t.generation is null or t.generation = w.generation)
    returning t.workspace_id, t.prefix`);
  const row = rowsOf(result)[0];
  return row ? { workspaceId: String(row.workspace_id), prefix: String(row.prefix) } : null;
}

/** Revokes every live token of a workspace; returns how many. */
export async function revokeTokens(db: Db, workspaceId: string): Promise<number> {
  const revoked = await db
    .update(workspaceTokens)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(workspaceTokens.workspaceId, workspaceId), isNull(workspaceTokens.revokedAt)))
    .returning({ id: workspaceTokens.id });
  return revoked.length;
}

/**
 * Revokes the others and stores `token` (bound to `generation` when it is an instance's), in one
 * statement — only while the workspace is neither `removing` nor `removed`. The statement holds
 * the workspace row `FOR SHARE`, so it serialises with removal's transition: either it commits
 * first and the removal's revocation (which follows that transition) sees the new token, or it
 * runs after and finds the workspace removing. Storing a token that exists already (an
 * instance's derived token, re-stored on a re-driven launch) revives it rather than failing.
 *
 * @returns false when the workspace is removing, removed or gone: nothing was written.
 */
export async function replaceTokens(
  db: Db,
  workspaceId: string,
  token: MintedToken,
  generation: number | null = null,
): Promise<boolean> {
  const result = await db.execute(sql`
    with live as (
      select id from workspaces
      where id = ${workspaceId} and status not in ('removing', 'removed')
      for share
    ),
    revoked as (
      update workspace_tokens set revoked_at = now()
      where workspace_id in (select id from live) and revoked_at is null
        and token_hash <> ${token.hash}
    )
    insert into workspace_tokens (workspace_id, token_hash, prefix, generation)
    select id, ${token.hash}, ${token.prefix}, ${generation}::int from live
    on conflict (token_hash) do update set revoked_at = null, generation = excluded.generation
    returning id`);
  return rowsOf(result).length > 0;
}
