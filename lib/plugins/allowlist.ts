import { asc, desc, sql } from "drizzle-orm";
import type { Db } from "../db/client.js";
import { pluginAllowlist } from "../db/schema.js";

/**
 * The plugin allowlist. An empty list allows every plugin; otherwise only the names on it may be
 * installed or downloaded.
 */

/** The allowlisted names, sorted. */
export async function getAllowlist(db: Db): Promise<string[]> {
  const rows = await db
    .select({ name: pluginAllowlist.name })
    .from(pluginAllowlist)
    .orderBy(asc(pluginAllowlist.name));
  return rows.map((r) => r.name);
}

/**
 * Replaces the whole list in one transaction, so no reader ever sees it half-written (an empty
 * moment would allow everything). Names must already be validated.
 * @returns the stored list, sorted and without duplicates.
 */
export async function replaceAllowlist(db: Db, names: readonly string[]): Promise<string[]> {
  const unique = [...new Set(names)].sort();
  await db.transaction(async (tx) => {
    await tx.delete(pluginAllowlist);
    if (unique.length > 0)
      await tx.insert(pluginAllowlist).values(unique.map((name) => ({ name })));
  });
  return unique;
}

/** True when the list is empty or names `name`. One query: the listed name sorts first. */
export async function isPluginAllowed(db: Db, name: string): Promise<boolean> {
  const [first] = await db
    .select({ name: pluginAllowlist.name })
    .from(pluginAllowlist)
    .orderBy(desc(sql`${pluginAllowlist.name} = ${name}`))
    .limit(1);
  return first === undefined || first.name === name;
}
