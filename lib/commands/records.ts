import { and, desc, eq, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "../db/client.js";
import { type WorkspaceCommandRow, workspaceCommands, workspaceEvents } from "../db/schema.js";
import { isUuid, type Page, seqCursorCodec, toPage } from "../workspaces/queries.js";
import { rowsOf } from "../workspaces/transition.js";
import type { CommandStatus } from "./status.js";

/**
 * `workspace_commands`: one row per command, written before it is sent and ended once its
 * outcome is known. Every write after the first is conditional on the row being unfinished,
 * so the request, a retried request and the sweep can all try to end it: the first one wins,
 * and a finished record never changes again.
 */

export type { WorkspaceCommandRow };

const UNFINISHED: CommandStatus[] = ["pending", "running"];
const unfinished = (id: string) =>
  and(eq(workspaceCommands.id, id), inArray(workspaceCommands.status, UNFINISHED));

export interface CommandClaim {
  workspaceId: string;
  instanceId: string;
  requestedBy: string;
  kind: "argv" | "script";
  argv: string[] | null;
  script: { sha256: string; bytes: number } | null;
  cwd: string | null;
  envKeys: string[];
  timeoutSeconds: number;
  idempotency: { key: string; hash: string } | null;
}

export type ClaimOutcome =
  | { kind: "claimed"; row: WorkspaceCommandRow }
  /** The same Idempotency-Key and the same request: that command, not a new one. */
  | { kind: "replayed"; row: WorkspaceCommandRow }
  | { kind: "key-reused" }
  /** The workspace is removing or removed, or no longer on that instance: nothing recorded. */
  | { kind: "moved-on" };

/**
 * Records a command before anything is sent — one statement, conditional on the workspace not
 * being removed and still being on the instance the running check chose (its generation is
 * taken from the same row). With an Idempotency-Key, concurrent duplicates race on the unique
 * (workspace, key) index: one insert wins, the others read the winner's row.
 */
export async function claimCommand(db: Db, c: CommandClaim): Promise<ClaimOutcome> {
  const result = await db.execute(sql`
    insert into workspace_commands (workspace_id, instance_id, generation, requested_by, kind,
      argv, script_sha256, script_bytes, cwd, env_keys, timeout_seconds, idempotency_key,
      request_hash)
    select w.id, ${c.instanceId}, w.generation, ${c.requestedBy}, ${c.kind},
      ${c.argv === null ? null : JSON.stringify(c.argv)}::jsonb, ${c.script?.sha256 ?? null},
      ${c.script?.bytes ?? null}::int, ${c.cwd}, ${JSON.stringify(c.envKeys)}::jsonb,
      ${c.timeoutSeconds}::int, ${c.idempotency?.key ?? null}, ${c.idempotency?.hash ?? null}
    from workspaces w
    where w.id = ${c.workspaceId} and w.status not in ('removing', 'removed')
      and w.instance_id = ${c.instanceId}
    on conflict (workspace_id, idempotency_key) do nothing
    returning id`);
  const id = rowsOf(result)[0]?.id;
  if (id !== undefined) {
    const row = await getCommand(db, c.workspaceId, String(id));
    if (!row) throw new Error("claimed command row vanished");
    return { kind: "claimed", row };
  }
  if (c.idempotency === null) return { kind: "moved-on" };
  const existing = await findByIdempotencyKey(db, c.workspaceId, c.idempotency.key);
  if (!existing) return { kind: "moved-on" };
  return existing.requestHash === c.idempotency.hash
    ? { kind: "replayed", row: existing }
    : { kind: "key-reused" };
}

/** The command an Idempotency-Key names on a workspace, if any. */
export async function findByIdempotencyKey(
  db: Db,
  workspaceId: string,
  key: string,
): Promise<WorkspaceCommandRow | null> {
  const [row] = await db
    .select()
    .from(workspaceCommands)
    .where(
      and(
        eq(workspaceCommands.workspaceId, workspaceId),
        eq(workspaceCommands.idempotencyKey, key),
      ),
    );
  return row ?? null;
}

/** One command of a workspace; a malformed id names none. */
export async function getCommand(
  db: Db,
  workspaceId: string,
  id: string,
): Promise<WorkspaceCommandRow | null> {
  if (!isUuid(id)) return null;
  const [row] = await db
    .select()
    .from(workspaceCommands)
    .where(and(eq(workspaceCommands.id, id), eq(workspaceCommands.workspaceId, workspaceId)));
  return row ?? null;
}

/** Records SSM's CommandId once the send is known; false if the record is finished already. */
export async function recordSent(db: Db, id: string, ssmCommandId: string): Promise<boolean> {
  const rows = await db
    .update(workspaceCommands)
    .set({ ssmCommandId, error: null, updatedAt: sql`now()` })
    .where(unfinished(id))
    .returning({ id: workspaceCommands.id });
  return rows.length > 0;
}

/** Keeps a record whose SendCommand answer was lost, saying so: the sweep looks for it. */
export async function noteSendUnknown(db: Db, id: string, error: string): Promise<void> {
  await db.update(workspaceCommands).set({ error, updatedAt: sql`now()` }).where(unfinished(id));
}

/** Moves a `pending` record to `running` once SSM says the agent started it. */
export async function noteStarted(db: Db, id: string, startedAt: Date | null): Promise<void> {
  await db
    .update(workspaceCommands)
    .set({ status: "running", startedAt, updatedAt: sql`now()` })
    .where(and(eq(workspaceCommands.id, id), eq(workspaceCommands.status, "pending")));
}

export interface CommandEnd {
  status: Exclude<CommandStatus, "pending" | "running">;
  exitCode: number | null;
  startedAt?: Date | null;
  finishedAt?: Date | null;
  error?: string | null;
  /**
   * Nothing was sent: the Idempotency-Key is given up, so a retry of the same request is a new
   * attempt rather than a replay of this failure.
   */
  releaseKey?: boolean;
}

/**
 * Ends an unfinished record (one conditional statement). Returns the row as it is now — the
 * one just ended, or, when another writer ended it first, that one's — or null if it is gone.
 */
export async function endCommand(
  db: Db,
  row: Pick<WorkspaceCommandRow, "id" | "workspaceId">,
  end: CommandEnd,
): Promise<WorkspaceCommandRow | null> {
  // The end and its `command.finished` event commit together (the log is the webhooks' outbox),
  // under the workspace's row lock so the event's seq follows the workspace's other events.
  const ended = await db.transaction(async (tx) => {
    await tx.execute(
      sql`select id from workspaces where id = ${row.workspaceId} for no key update`,
    );
    const [done] = await tx
      .update(workspaceCommands)
      .set({
        status: end.status,
        exitCode: end.exitCode,
        ...(end.startedAt !== undefined && { startedAt: end.startedAt }),
        finishedAt: end.finishedAt ?? sql`now()`,
        ...(end.error !== undefined && { error: end.error }),
        ...(end.releaseKey && { idempotencyKey: null }),
        updatedAt: sql`now()`,
      })
      .where(unfinished(row.id))
      .returning();
    if (done) {
      await tx.insert(workspaceEvents).values({
        workspaceId: done.workspaceId,
        type: "command.finished",
        reason: done.status,
        actor: done.requestedBy === "admin" ? "api" : "agent",
        data: { commandId: done.id, status: done.status, exitCode: done.exitCode },
      });
    }
    return done;
  });
  return ended ?? getCommand(db, row.workspaceId, row.id);
}

const commandCursor = seqCursorCodec("c");

/** @returns the cursor, or null when it is not one this API issued (malformed, out of range). */
export const decodeCommandCursor = commandCursor.decode;

/** A workspace's commands, newest first, in `seq` order — the same keyset paging as events. */
export async function listCommands(
  db: Db,
  workspaceId: string,
  opts: { limit: number; cursor?: { seq: string } },
): Promise<Page<WorkspaceCommandRow>> {
  const conds = [eq(workspaceCommands.workspaceId, workspaceId)];
  if (opts.cursor) conds.push(lt(workspaceCommands.seq, Number(opts.cursor.seq)));
  const rows = await db
    .select()
    .from(workspaceCommands)
    .where(and(...conds))
    .orderBy(desc(workspaceCommands.seq))
    .limit(opts.limit + 1);
  return toPage(rows, opts.limit, (r) => commandCursor.encode({ seq: String(r.seq) }));
}

/** Unfinished records after `afterSeq`, oldest first: the sweep's batches. */
export async function unfinishedCommands(
  db: Db,
  afterSeq: number,
  limit: number,
): Promise<WorkspaceCommandRow[]> {
  return db
    .select()
    .from(workspaceCommands)
    .where(
      and(
        inArray(workspaceCommands.status, UNFINISHED),
        sql`${workspaceCommands.seq} > ${afterSeq}`,
      ),
    )
    .orderBy(workspaceCommands.seq)
    .limit(limit);
}
