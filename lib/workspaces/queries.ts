import { and, asc, desc, eq, gt, lt, or } from "drizzle-orm";
import type { Db } from "../db/client.js";
import { type WorkspaceStatus, workspaceEvents, workspaces } from "../db/schema.js";
import type { WorkspaceRow } from "./model.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A path id that is not a uuid names no workspace: callers answer 404, never a database error. */
export const isUuid = (id: string) => UUID.test(id);

export async function getWorkspace(db: Db, id: string): Promise<WorkspaceRow | null> {
  if (!isUuid(id)) return null;
  const [row] = await db.select().from(workspaces).where(eq(workspaces.id, id));
  return row ?? null;
}

/** An opaque position in a list ordered by (time, id). */
export interface Cursor {
  at: Date;
  id: string;
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(`${c.at.toISOString()}|${c.id}`).toString("base64url");
}

/** @returns the cursor, or null when it is not one this API issued. */
export function decodeCursor(raw: string): Cursor | null {
  const [at, id, ...rest] = Buffer.from(raw, "base64url").toString("utf8").split("|");
  if (at === undefined || id === undefined || rest.length > 0 || !isUuid(id)) return null;
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? null : { at: date, id };
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Cuts `limit + 1` fetched rows to a page; the extra row only says another page exists. */
function toPage<T>(rows: T[], limit: number, cursorOf: (row: T) => Cursor): Page<T> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items,
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor(cursorOf(last)) : null,
  };
}

/** Newest first; `limit + 1` rows tell whether another page exists without a count query. */
export async function listWorkspaces(
  db: Db,
  opts: { status?: WorkspaceStatus; limit: number; cursor?: Cursor },
): Promise<Page<WorkspaceRow>> {
  const conds = [];
  if (opts.status) conds.push(eq(workspaces.status, opts.status));
  if (opts.cursor) {
    const c = opts.cursor;
    conds.push(
      or(
        lt(workspaces.createdAt, c.at),
        and(eq(workspaces.createdAt, c.at), lt(workspaces.id, c.id)),
      ),
    );
  }
  const rows = await db
    .select()
    .from(workspaces)
    .where(and(...conds))
    .orderBy(desc(workspaces.createdAt), desc(workspaces.id))
    .limit(opts.limit + 1);
  return toPage(rows, opts.limit, (r) => ({ at: r.createdAt, id: r.id }));
}

export type EventRow = typeof workspaceEvents.$inferSelect;

/** Oldest first: the history reads as it happened. */
export async function listEvents(
  db: Db,
  workspaceId: string,
  opts: { limit: number; cursor?: Cursor },
): Promise<Page<EventRow>> {
  const conds = [eq(workspaceEvents.workspaceId, workspaceId)];
  if (opts.cursor) {
    const c = opts.cursor;
    const after = or(
      gt(workspaceEvents.at, c.at),
      and(eq(workspaceEvents.at, c.at), gt(workspaceEvents.id, c.id)),
    );
    if (after) conds.push(after);
  }
  const rows = await db
    .select()
    .from(workspaceEvents)
    .where(and(...conds))
    .orderBy(asc(workspaceEvents.at), asc(workspaceEvents.id))
    .limit(opts.limit + 1);
  return toPage(rows, opts.limit, (r) => ({ at: r.at, id: r.id }));
}
