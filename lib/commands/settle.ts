import { type Invocation, readInvocation, waitForInvocation } from "../compute/commands.js";
import { describeAwsError } from "../compute/errors.js";
import { remainingMs } from "../deadline.js";
import type { Deps } from "../deps.js";
import { endCommand, noteStarted, type WorkspaceCommandRow } from "./records.js";
import { commandStatusOf, isFinished } from "./status.js";

/**
 * Reading a command's invocation from SSM into its record: what a request that waits, a GET, a
 * cancel and the sweep all do. Only reads SSM; never sends.
 */

/** The record as it is after a read, with what SSM said (null: not visible, or not read). */
export interface Settled {
  row: WorkspaceCommandRow;
  invocation: Invocation | null;
}

// Left for the answer itself once a wait has stopped.
const ANSWER_MARGIN_MS = 1_000;

/**
 * Applies one read to the record: a finished invocation ends it (status, exit code, times), a
 * started one moves it from `pending` to `running`; nothing else is written.
 */
export async function applyInvocation(
  deps: Pick<Deps, "db">,
  row: WorkspaceCommandRow,
  invocation: Invocation | null,
): Promise<Settled> {
  if (invocation === null || isFinished(row.status)) return { row, invocation };
  const status = commandStatusOf(invocation);
  const { startedAt, finishedAt, result } = invocation;
  if (result === null || !isFinished(status)) {
    if (status === "running" && row.status === "pending") {
      await noteStarted(deps.db, row.id, startedAt);
      return { row: { ...row, status, startedAt }, invocation };
    }
    return { row, invocation };
  }
  // -1 is SSM's "it never ran, or was killed": no exit code of the command's own.
  const exitCode = result.exitCode >= 0 ? result.exitCode : null;
  const ranToAnExit = status === "succeeded" || (status === "failed" && exitCode !== null);
  const ended = await endCommand(deps.db, row, {
    status: status as Exclude<typeof status, "pending" | "running">,
    exitCode,
    startedAt,
    finishedAt,
    error: ranToAnExit ? null : `SSM: ${result.statusDetails}`,
  });
  return { row: ended ?? row, invocation };
}

/**
 * Reads the record's command once (when it has been sent) and applies it. Throws what
 * GetCommandInvocation threw, other than its "does not exist (yet)".
 */
export async function settleCommand(deps: Deps, row: WorkspaceCommandRow): Promise<Settled> {
  if (row.ssmCommandId === null) return { row, invocation: null };
  const invocation = await readInvocation(deps, row.ssmCommandId, row.instanceId);
  return applyInvocation(deps, row, invocation);
}

/**
 * Waits up to `waitSeconds` — never past the request's deadline less the time to answer — for
 * the command to finish, then applies the last read. A finished record (or a wait of 0) is read
 * once, for its output; an unsent one is not read at all.
 */
export async function awaitCommand(
  deps: Deps,
  row: WorkspaceCommandRow,
  waitSeconds: number,
): Promise<Settled> {
  if (row.ssmCommandId === null) return { row, invocation: null };
  const waitMs = Math.min(waitSeconds * 1000, remainingMs(deps.deadline) - ANSWER_MARGIN_MS);
  if (isFinished(row.status) || waitMs <= 0) {
    try {
      return await settleCommand(deps, row);
    } catch (err) {
      deps.log.warn("command read failed", { commandId: row.id, error: describeAwsError(err) });
      return { row, invocation: null };
    }
  }
  const last = await waitForInvocation(deps, row.ssmCommandId, row.instanceId, Date.now() + waitMs);
  return applyInvocation(deps, row, last);
}
