import { and, asc, desc, eq, getTableColumns, gt, isNotNull, sql } from "drizzle-orm";
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

/**
 * Where a page of workspaces ended: the last row's `created_at` as epoch microseconds — the
 * column's full precision, computed by the database, so the next page starts exactly after it
 * on PostgreSQL (microseconds) and PGlite (milliseconds) alike — and its id for ties.
 */
export interface WorkspaceCursor {
  createdUs: string;
  id: string;
}

/** Where a page of a `seq`-ordered log (events, commands) ended: its last row's `seq`. */
export interface SeqCursor {
  seq: string;
}

/** Where a page of a workspace's events ended. */
export type EventCursor = SeqCursor;

// Cursors are opaque to clients: base64url of a tagged text, so one list's cursor is not
// accepted by another. Microseconds and seq stay within 2^53 (up to the year 2255 and nine
// quadrillion events), so a cursor's number converts to the database's type exactly.
const WORKSPACE_CURSOR = /^w\|(0|[1-9][0-9]{0,15})\|([0-9a-f-]{36})$/;
const fitsExactly = (digits: string) => Number(digits) <= Number.MAX_SAFE_INTEGER;

const decoded = (raw: string) => Buffer.from(raw, "base64url").toString("utf8");

function encodeWorkspaceCursor(c: WorkspaceCursor): string {
  return Buffer.from(`w|${c.createdUs}|${c.id}`).toString("base64url");
}

/** @returns the cursor, or null when it is not one this API issued (malformed, out of range). */
export function decodeWorkspaceCursor(raw: string): WorkspaceCursor | null {
  const m = WORKSPACE_CURSOR.exec(decoded(raw));
  if (!m?.[1] || !m[2] || !fitsExactly(m[1]) || !isUuid(m[2])) return null;
  return { createdUs: m[1], id: m[2] };
}

/**
 * The cursor codec of one `seq`-ordered list, under its own one-letter `tag`: each list module
 * makes its own and keeps its encoder to itself.
 */
export function seqCursorCodec(tag: string) {
  const pattern = new RegExp(`^${tag}\\|([1-9][0-9]{0,15})$`);
  return {
    encode: (c: SeqCursor): string => Buffer.from(`${tag}|${c.seq}`).toString("base64url"),
    /** @returns the cursor, or null when it is not one this API issued (malformed, out of range). */
    decode: (raw: string): SeqCursor | null => {
      const m = pattern.exec(decoded(raw));
      if (!m?.[1] || !fitsExactly(m[1])) return null;
      return { seq: m[1] };
    },
  };
}

const eventCursor = seqCursorCodec("e");

/** @returns the cursor, or null when it is not one this API issued (malformed, out of range). */
export const decodeEventCursor = eventCursor.decode;

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Cuts `limit + 1` fetched rows to a page; the extra row only says another page exists. */
export function toPage<T>(rows: T[], limit: number, cursorOf: (row: T) => string): Page<T> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items,
    nextCursor: rows.length > limit && last !== undefined ? cursorOf(last) : null,
  };
}

/** `created_at` in epoch microseconds as text: exact (numeric, then bigint), on every backend. */
const createdUs = sql<string>`(extract(epoch from ${workspaces.createdAt}) * 1000000)::bigint::text`;

/**
 * Newest first, by `(created_at, id)`; `limit + 1` rows tell whether another page exists without
 * a count query. The cursor's position is compared in SQL at the column's own precision.
 */
export async function listWorkspaces(
  db: Db,
  opts: { status?: WorkspaceStatus; limit: number; cursor?: WorkspaceCursor },
): Promise<Page<WorkspaceRow>> {
  const conds = [];
  if (opts.status) conds.push(eq(workspaces.status, opts.status));
  if (opts.cursor) {
    const { createdUs: us, id } = opts.cursor;
    // A row comparison, which the (created_at desc, id desc) index serves.
    conds.push(
      sql`(${workspaces.createdAt}, ${workspaces.id}) <
          (timestamptz 'epoch' + ${us}::bigint * interval '1 microsecond', ${id}::uuid)`,
    );
  }
  const rows = await db
    .select({ row: getTableColumns(workspaces), createdUs })
    .from(workspaces)
    .where(and(...conds))
    .orderBy(desc(workspaces.createdAt), desc(workspaces.id))
    .limit(opts.limit + 1);
  const page = toPage(rows, opts.limit, (r) =>
    encodeWorkspaceCursor({ createdUs: r.createdUs, id: r.row.id }),
  );
  return { items: page.items.map((r) => r.row), nextCursor: page.nextCursor };
}

export type EventRow = typeof workspaceEvents.$inferSelect;
/** An event that is a status change: it names the status it moved to. */
export type StatusEventRow = EventRow & { to: WorkspaceStatus };

/** Oldest first, in `seq` order: the history reads as it was committed. */
export async function listEvents(
  db: Db,
  workspaceId: string,
  opts: { limit: number; cursor?: EventCursor },
): Promise<Page<StatusEventRow>> {
  // The status history only: plugin and command outcomes share the log (it is the webhooks'
  // outbox) but are not status changes.
  const conds = [eq(workspaceEvents.workspaceId, workspaceId), isNotNull(workspaceEvents.to)];
  if (opts.cursor) conds.push(gt(workspaceEvents.seq, Number(opts.cursor.seq)));
  const rows = await db
    .select()
    .from(workspaceEvents)
    .where(and(...conds))
    .orderBy(asc(workspaceEvents.seq))
    .limit(opts.limit + 1);
  // `to is not null` above: every row names its status.
  return toPage(rows as StatusEventRow[], opts.limit, (r) =>
    eventCursor.encode({ seq: String(r.seq) }),
  );
}
