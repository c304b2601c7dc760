import { and, asc, eq, type SQL, sql } from "drizzle-orm";
import type { Db } from "../db/client.js";
import {
  type PluginSnapshot,
  type WorkspacePluginRow,
  workspacePlugins,
  workspaces,
} from "../db/schema.js";
import { redactText } from "../redact.js";
import type { Actor } from "../workspaces/model.js";
import { rowsOf } from "../workspaces/transition.js";

/**
 * `workspace_plugins`: what each workspace has installed, one row per (workspace, plugin), and
 * the one operation at a time that may be changing it.
 *
 * An install or uninstall first *claims* the row (`installing`/`uninstalling` with a fresh
 * `op_id`) in one conditional statement, before anything is sent; a second operation finds the
 * claim and is refused (PLUGIN_BUSY). Every later write of the operation names its `op_id`, so
 * the answer of an older operation can never overwrite a newer one. A claim whose operation died
 * with its request expires and is finished by the sweep, or taken over by the next operation.
 */

export type { PluginSnapshot, WorkspacePluginRow };

export interface PluginKey {
  workspaceId: string;
  name: string;
}

const byKey = (k: PluginKey) =>
  and(eq(workspacePlugins.workspaceId, k.workspaceId), eq(workspacePlugins.name, k.name));

// A claim outlives its command's own timeout by this margin before another operation may take
// it over: the command may still be finishing on the instance.
const CLAIM_MARGIN_SECONDS = 120;
/** How long the install program may run on the instance (SSM executionTimeout). */
export const INSTALL_COMMAND_TIMEOUT_SECONDS = 300;
/** How long the uninstall program may run on the instance. */
export const UNINSTALL_COMMAND_TIMEOUT_SECONDS = 60;
export const INSTALL_CLAIM_SECONDS = INSTALL_COMMAND_TIMEOUT_SECONDS + CLAIM_MARGIN_SECONDS;
export const UNINSTALL_CLAIM_SECONDS = UNINSTALL_COMMAND_TIMEOUT_SECONDS + CLAIM_MARGIN_SECONDS;

/**
 * The condition under which a row may be claimed: no operation holds it, its operation's claim
 * expired, or it only waits to be re-applied to a new instance and nothing was sent for it yet.
 */
const CLAIMABLE = sql`(
  p.state in ('installed', 'failed')
  or (p.state = 'installing' and p.updated_at < now() - make_interval(secs => ${INSTALL_CLAIM_SECONDS}))
  or (p.state = 'uninstalling' and p.updated_at < now() - make_interval(secs => ${UNINSTALL_CLAIM_SECONDS}))
  or (p.command_id is null and p.instance_id is null)
)`;

/** A workspace's plugin records, by name. */
export async function listWorkspacePlugins(
  db: Db,
  workspaceId: string,
): Promise<WorkspacePluginRow[]> {
  return db
    .select()
    .from(workspacePlugins)
    .where(eq(workspacePlugins.workspaceId, workspaceId))
    .orderBy(asc(workspacePlugins.name));
}

/** One plugin record, or null. */
export async function getWorkspacePlugin(
  db: Db,
  key: PluginKey,
): Promise<WorkspacePluginRow | null> {
  const [row] = await db.select().from(workspacePlugins).where(byKey(key));
  return row ?? null;
}

export interface InstallClaim extends PluginKey {
  opId: string;
  instanceId: string;
  version: string;
  source: string;
  digest: string;
  archiveKey: string;
  archiveSha256: string;
  skills: readonly string[];
}

export type ClaimResult =
  | { kind: "claimed"; row: WorkspacePluginRow }
  /** Another operation holds the row; it is returned as it is. */
  | { kind: "busy"; row: WorkspacePluginRow }
  /** The workspace is removing or removed (or gone): nothing may be claimed on it. */
  | { kind: "workspace-removed" }
  /**
   * The workspace no longer runs on the instance the running check saw (restarted, or stopping
   * or stopped since): a claim for that instance would record files its successor never gets.
   */
  | { kind: "moved-on" };

/**
 * Claims the row for an install, creating it if needed — one statement, conditional on the
 * workspace not being removed and on no live claim holding the row. The record as it was is kept
 * in `previous`, to be restored if the install ends without changing the instance's files.
 */
export async function claimInstall(db: Db, c: InstallClaim): Promise<ClaimResult> {
  const result = await db.execute(sql`
    insert into workspace_plugins as p (workspace_id, name, version, source, digest, state, op_id,
      command_id, instance_id, error, archive_key, archive_sha256, skills, previous)
    select w.id, ${c.name}, ${c.version}, ${c.source}, ${c.digest}, 'installing', ${c.opId}::uuid,
      null, ${c.instanceId}, null, ${c.archiveKey}, ${c.archiveSha256},
      ${JSON.stringify(c.skills)}::jsonb, null
    from workspaces w where w.id = ${c.workspaceId} and ${ON_CLAIMED_INSTANCE(c.instanceId)}
    on conflict (workspace_id, name) do update set
      version = excluded.version, source = excluded.source, digest = excluded.digest,
      state = 'installing', op_id = excluded.op_id, command_id = null,
      instance_id = excluded.instance_id, error = null, archive_key = excluded.archive_key,
      archive_sha256 = excluded.archive_sha256, skills = excluded.skills,
      previous = ${SNAPSHOT}, updated_at = now()
      where ${CLAIMABLE}
    returning p.*`);
  return claimOutcome(db, c, result);
}

/** Claims an existing row for an uninstall; `null` when there is no record to uninstall. */
export async function claimUninstall(
  db: Db,
  c: PluginKey & { opId: string; instanceId: string },
): Promise<ClaimResult | null> {
  const result = await db.execute(sql`
    update workspace_plugins p set state = 'uninstalling', op_id = ${c.opId}::uuid,
      command_id = null, instance_id = ${c.instanceId}, error = null, previous = ${SNAPSHOT},
      updated_at = now()
    from workspaces w
    where p.workspace_id = ${c.workspaceId} and p.name = ${c.name} and w.id = p.workspace_id
      and ${ON_CLAIMED_INSTANCE(c.instanceId)} and ${CLAIMABLE}
    returning p.*`);
  if (rowsOf(result).length === 0 && !(await getWorkspacePlugin(db, c))) return null;
  return claimOutcome(db, c, result);
}

// A claim names the instance the running check found; it holds only while the workspace (alias
// `w`) is still on that instance and not on its way to removal or a stop.
const ON_CLAIMED_INSTANCE = (instanceId: string) => sql`w.instance_id = ${instanceId}
  and w.status not in ('removing', 'removed', 'stopping', 'stopped', 'starting')`;

// The row's installed facts before a claim; an expired claim being taken over carries its own
// `previous` forward (what the files were before that operation).
const SNAPSHOT = sql`(case
  when p.state in ('installed', 'failed') then jsonb_build_object('state', p.state,
    'version', p.version, 'source', p.source, 'digest', p.digest, 'error', p.error)
  else p.previous end)`;

async function claimOutcome(
  db: Db,
  key: PluginKey & { instanceId: string },
  result: unknown,
): Promise<ClaimResult> {
  const raw = rowsOf(result)[0];
  if (raw) return { kind: "claimed", row: fromRaw(raw) };
  const [workspace] = await db
    .select({ status: workspaces.status, instanceId: workspaces.instanceId })
    .from(workspaces)
    .where(eq(workspaces.id, key.workspaceId));
  if (!workspace || workspace.status === "removing" || workspace.status === "removed") {
    return { kind: "workspace-removed" };
  }
  if (
    workspace.instanceId !== key.instanceId ||
    workspace.status === "stopping" ||
    workspace.status === "stopped" ||
    workspace.status === "starting"
  ) {
    return { kind: "moved-on" };
  }
  const row = await getWorkspacePlugin(db, key);
  if (!row) throw new Error("plugin claim refused without a row");
  return { kind: "busy", row };
}

/** Records the command an operation's program was sent as; false if the claim moved on. */
export async function recordSent(
  db: Db,
  input: PluginKey & { opId: string; commandId: string; instanceId: string },
): Promise<boolean> {
  const rows = await db
    .update(workspacePlugins)
    .set({ commandId: input.commandId, instanceId: input.instanceId, updatedAt: sql`now()` })
    .where(and(byKey(input), eq(workspacePlugins.opId, input.opId)))
    .returning({ name: workspacePlugins.name });
  return rows.length > 0;
}

/**
 * Keeps a claim alive after a send whose answer was lost, naming the instance it went to: the
 * sweep looks for the command in that instance's SSM history later.
 */
export async function noteSendUnknown(
  db: Db,
  input: PluginKey & { opId: string; error: string; instanceId: string },
): Promise<void> {
  await db
    .update(workspacePlugins)
    .set({ error: input.error, instanceId: input.instanceId, updatedAt: sql`now()` })
    .where(and(byKey(input), eq(workspacePlugins.opId, input.opId)));
}

/** How an operation ended, as far as the record is concerned. */
export type OperationEnd =
  /** The install program ran: the new version is in place. */
  | { kind: "installed" }
  /** The uninstall program ran: the files are gone. */
  | { kind: "uninstalled" }
  /**
   * Nothing changed on the instance: nothing was sent, or the install program failed before
   * its swap and kept the previous version. The record goes back to what it was (a new record
   * is dropped, or kept `failed` with the error when `keepFailed`).
   */
  | { kind: "unchanged"; error: string; keepFailed?: boolean }
  /** The outcome on the instance is not known (an uninstall cut short): `failed`, retry it. */
  | { kind: "failed"; error: string };

/**
 * A plugin record's change together with its event (`plugin.installed`, `plugin.failed`,
 * `plugin.uninstalled`), in one statement: the event is the webhooks' outbox, so it commits with
 * the change or not at all. The workspace's row is locked, as every status change locks it, so a
 * workspace's events take their `seq` in the order they commit (deliveries go out in that
 * order). `for no key update`: it waits for a status change's `for update` and another event's
 * lock, but not for the key-share lock a plugin claim's foreign key takes on the same row, so a
 * claim and an outcome of two plugins of one workspace cannot deadlock.
 */
function withPluginEvent(
  workspaceId: string,
  change: SQL,
  type: "plugin.installed" | "plugin.failed" | "plugin.uninstalled",
  error: string | null,
  actor: Actor,
): SQL {
  return sql`
    with lk as (select id from workspaces where id = ${workspaceId} for no key update),
    changed as (${change}),
    ev as (
      insert into workspace_events (workspace_id, type, reason, actor, data)
      select c.workspace_id, ${type}, ${type.slice("plugin.".length)}, ${actor},
        jsonb_build_object('plugin', c.name, 'version', c.version, 'source', c.source,
          'digest', c.digest, 'error', ${error === null ? null : redactText(error)}::text)
      from changed c join lk on lk.id = c.workspace_id
    )
    select * from changed`;
}

/**
 * Ends the operation holding the row, if it still holds it (`op_id`): one conditional
 * statement, which also logs the outcome's event. Returns the row as it is afterwards, or null
 * when it was deleted or moved on.
 */
export async function endOperation(
  db: Db,
  key: PluginKey & { opId: string },
  end: OperationEnd,
  actor: Actor = "api",
): Promise<{ done: boolean; row: WorkspacePluginRow | null }> {
  const mine = sql`p.workspace_id = ${key.workspaceId} and p.name = ${key.name} and p.op_id = ${key.opId}::uuid`;
  const logged = (
    change: SQL,
    type: "plugin.installed" | "plugin.failed" | "plugin.uninstalled",
    error: string | null,
  ) => db.execute(withPluginEvent(key.workspaceId, change, type, error, actor));
  let result: unknown;
  switch (end.kind) {
    case "installed":
      result = await logged(
        sql`
        update workspace_plugins p set state = 'installed', op_id = null, error = null,
          previous = null, updated_at = now()
        where ${mine} and p.state = 'installing' returning p.*`,
        "plugin.installed",
        null,
      );
      break;
    case "uninstalled":
      result = await logged(
        sql`
        delete from workspace_plugins p where ${mine} and p.state = 'uninstalling' returning p.*`,
        "plugin.uninstalled",
        null,
      );
      return { done: rowsOf(result).length > 0, row: null };
    case "unchanged": {
      // A record that existed goes back to its facts, with the error; a new one is dropped
      // (or kept as `failed` so the caller can read why). Either way the operation failed.
      const deleted = end.keepFailed
        ? { rows: [] }
        : await logged(
            sql`
            delete from workspace_plugins p where ${mine} and p.previous is null returning p.*`,
            "plugin.failed",
            end.error,
          );
      if (rowsOf(deleted).length > 0) return { done: true, row: null };
      result = await logged(
        sql`
        update workspace_plugins p set
          state = coalesce(p.previous->>'state', 'failed')::plugin_state,
          version = coalesce(p.previous->>'version', p.version),
          source = coalesce(p.previous->>'source', p.source),
          digest = coalesce(p.previous->>'digest', p.digest),
          error = ${end.error}, op_id = null, previous = null, updated_at = now()
        where ${mine} returning p.*`,
        "plugin.failed",
        end.error,
      );
      break;
    }
    case "failed":
      result = await logged(
        sql`
        update workspace_plugins p set state = 'failed', error = ${end.error}, op_id = null,
          previous = null, updated_at = now()
        where ${mine} returning p.*`,
        "plugin.failed",
        end.error,
      );
      break;
    default: {
      const unreachable: never = end;
      throw new Error(`unhandled operation end ${JSON.stringify(unreachable)}`);
    }
  }
  const raw = rowsOf(result)[0];
  return raw ? { done: true, row: fromRaw(raw) } : { done: false, row: null };
}

/**
 * A restart gives the workspace a new, empty instance: every plugin it has (installed, or being
 * installed) is to be installed again there — `installing` with a fresh claim and no command, so
 * the sweep sends it once the new instance is online; what was being uninstalled is simply gone;
 * a record that cannot be re-applied (no staged archive) says so. One statement per kind, in the
 * caller's order after the generation moved on; the old instance's commands are no longer read.
 */
export async function reapplyPlugins(db: Db, workspaceId: string): Promise<void> {
  // The new instance never had it: the uninstall is done, and said so.
  await db.execute(
    withPluginEvent(
      workspaceId,
      sql`delete from workspace_plugins
        where workspace_id = ${workspaceId} and state = 'uninstalling' returning *`,
      "plugin.uninstalled",
      null,
      "api",
    ),
  );
  await db.execute(sql`
    update workspace_plugins set state = 'installing', op_id = gen_random_uuid(),
      command_id = null, instance_id = null, previous = null, error = null, updated_at = now()
    where workspace_id = ${workspaceId} and state in ('installed', 'installing')
      and archive_key is not null`);
  const unstaged =
    "the workspace was restarted and this record has no staged archive; install it again";
  await db.execute(
    withPluginEvent(
      workspaceId,
      sql`update workspace_plugins set state = 'failed', op_id = null, command_id = null,
        instance_id = null, previous = null, updated_at = now(), error = ${unstaged}
      where workspace_id = ${workspaceId} and state in ('installed', 'installing')
        and archive_key is null returning *`,
      "plugin.failed",
      unstaged,
      "api",
    ),
  );
}

/** Maps a raw `workspace_plugins` row (snake_case) to the typed row. */
function fromRaw(r: Record<string, unknown>): WorkspacePluginRow {
  const date = (v: unknown) => (v instanceof Date ? v : new Date(String(v)));
  const json = <T>(v: unknown): T => (typeof v === "string" ? (JSON.parse(v) as T) : (v as T));
  return {
    workspaceId: String(r.workspace_id),
    name: String(r.name),
    version: String(r.version),
    source: String(r.source),
    digest: String(r.digest),
    state: r.state as WorkspacePluginRow["state"],
    commandId: (r.command_id as string | null) ?? null,
    error: (r.error as string | null) ?? null,
    opId: (r.op_id as string | null) ?? null,
    instanceId: (r.instance_id as string | null) ?? null,
    archiveKey: (r.archive_key as string | null) ?? null,
    archiveSha256: (r.archive_sha256 as string | null) ?? null,
    skills: json<string[]>(r.skills ?? []),
    previous: json<PluginSnapshot | null>(r.previous ?? null),
    createdAt: date(r.created_at),
    updatedAt: date(r.updated_at),
  };
}
