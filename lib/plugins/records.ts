import { and, asc, eq, sql } from "drizzle-orm";
import type { Db } from "../db/client.js";
import { type WorkspacePluginRow, workspacePlugins } from "../db/schema.js";

/**
 * `workspace_plugins`: what each workspace has installed, one row per (workspace, plugin).
 * Every write after the first names the command it is about (`AND command_id = …`), so the
 * answer of an older command can never overwrite the record of a newer one.
 */

export type { WorkspacePluginRow };

export interface PluginKey {
  workspaceId: string;
  name: string;
}

const byKey = (k: PluginKey) =>
  and(eq(workspacePlugins.workspaceId, k.workspaceId), eq(workspacePlugins.name, k.name));

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

/** Records an install whose command was sent: `installing` with that command's id. */
export async function recordInstalling(
  db: Db,
  input: PluginKey & { version: string; source: string; digest: string; commandId: string },
): Promise<WorkspacePluginRow> {
  const values = {
    version: input.version,
    source: input.source,
    digest: input.digest,
    state: "installing" as const,
    commandId: input.commandId,
    error: null,
  };
  const [row] = await db
    .insert(workspacePlugins)
    .values({ workspaceId: input.workspaceId, name: input.name, ...values })
    .onConflictDoUpdate({
      target: [workspacePlugins.workspaceId, workspacePlugins.name],
      set: { ...values, updatedAt: sql`now()` },
    })
    .returning();
  if (!row) throw new Error("upsert returned no row");
  return row;
}

/**
 * Finishes an `installing` row for the command it names: `installed`, or `failed` with the
 * error. Null when the row has moved on (another install, an uninstall).
 */
export async function recordInstallResult(
  db: Db,
  input: PluginKey & { commandId: string; error: string | null },
): Promise<WorkspacePluginRow | null> {
  const [row] = await db
    .update(workspacePlugins)
    .set({
      state: input.error === null ? "installed" : "failed",
      error: input.error,
      updatedAt: sql`now()`,
    })
    .where(
      and(
        byKey(input),
        eq(workspacePlugins.state, "installing"),
        eq(workspacePlugins.commandId, input.commandId),
      ),
    )
    .returning();
  return row ?? null;
}

/** Marks a row `uninstalling` with the command that removes it. */
export async function recordUninstalling(
  db: Db,
  input: PluginKey & { commandId: string },
): Promise<WorkspacePluginRow | null> {
  const [row] = await db
    .update(workspacePlugins)
    .set({ state: "uninstalling", commandId: input.commandId, error: null, updatedAt: sql`now()` })
    .where(byKey(input))
    .returning();
  return row ?? null;
}

/** Deletes the row the given uninstall command removed. */
export async function deleteUninstalled(
  db: Db,
  input: PluginKey & { commandId: string },
): Promise<boolean> {
  const rows = await db
    .delete(workspacePlugins)
    .where(and(byKey(input), eq(workspacePlugins.commandId, input.commandId)))
    .returning({ name: workspacePlugins.name });
  return rows.length > 0;
}

/** An uninstall that failed: the files may be partly gone, so the row says `failed`. */
export async function recordUninstallFailed(
  db: Db,
  input: PluginKey & { commandId: string; error: string },
): Promise<void> {
  await db
    .update(workspacePlugins)
    .set({ state: "failed", error: input.error, updatedAt: sql`now()` })
    .where(and(byKey(input), eq(workspacePlugins.commandId, input.commandId)));
}
