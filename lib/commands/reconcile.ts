import { findSentCommand } from "../compute/commands.js";
import { isTransientAwsError } from "../compute/errors.js";
import type { Deps } from "../deps.js";
import { endCommand, recordSent, type WorkspaceCommandRow } from "./records.js";
import { commandMarker } from "./run.js";
import { settleCommand } from "./settle.js";
import { isFinished } from "./status.js";

// A record with no SSM id may still be in its request (sending); the sweep leaves it this long
// before looking in SSM's history, which may also list a fresh command late.
const SEND_SETTLE_MS = 60_000;
// How far before the record was written its command may have been sent (clock skew between the
// database and SSM).
const LOOKBACK_MS = 10 * 60_000;
// SSM ends every invocation by itself — delivery times out after TimeoutSeconds plus the
// execution timeout (monitor-commands.html), the agent kills the script at its execution
// timeout — so this margin past both only catches an answer that never comes.
const OUTCOME_MARGIN_SECONDS = 120;
const MIN_DELIVERY_SECONDS = 30;

/**
 * What {@link driveCommand} did: `finished` (the record was ended), `found` (a lost send was
 * found in SSM's history and recorded), `pending` (still running, or AWS could not say — later),
 * `skipped` (it had ended already).
 */
export type CommandDrive = "finished" | "found" | "pending" | "skipped";

/**
 * Drives an unfinished command record on — the sweep's commands pass, for commands whose
 * requests ended before they did (the API answered 202, the send's answer was lost, the request
 * died):
 *
 * - sent: its invocation is read, and a finished one ends the record; one SSM never ends within
 *   its timeouts and a margin ends `failed`;
 * - its send's answer lost (no SSM id): once the send has settled, SSM's history is searched
 *   for the record's marker (ListCommands); found → recorded and read from then on; not found →
 *   `undeliverable`: SSM never took it. A command is never sent again — unlike a plugin's
 *   program it is not idempotent.
 */
export async function driveCommand(deps: Deps, record: WorkspaceCommandRow): Promise<CommandDrive> {
  if (isFinished(record.status)) return "skipped";
  const age = deps.clock.now().getTime() - record.requestedAt.getTime();
  let row = record;
  if (row.ssmCommandId === null) {
    if (age < SEND_SETTLE_MS) return "pending";
    let found: string | null;
    try {
      found = await findSentCommand(
        deps,
        row.instanceId,
        commandMarker(row.id),
        new Date(row.requestedAt.getTime() - LOOKBACK_MS),
      );
    } catch (err) {
      if (isTransientAwsError(err)) return "pending";
      throw err;
    }
    if (found === null) {
      const ended = await endCommand(deps.db, row, {
        status: "undeliverable",
        exitCode: null,
        error: "SSM has no record of the command: it was never sent, and nothing ran",
      });
      return ended?.status === "undeliverable" ? "finished" : "skipped";
    }
    if (!(await recordSent(deps.db, row.id, found))) return "skipped";
    row = { ...row, ssmCommandId: found };
  }
  try {
    row = (await settleCommand(deps, row)).row;
  } catch (err) {
    if (isTransientAwsError(err)) return "pending";
    throw err;
  }
  if (isFinished(row.status)) return "finished";
  const delivery = Math.max(MIN_DELIVERY_SECONDS, row.timeoutSeconds);
  if (age <= (delivery + row.timeoutSeconds + OUTCOME_MARGIN_SECONDS) * 1000) {
    return record.ssmCommandId === null ? "found" : "pending";
  }
  await endCommand(deps.db, row, {
    status: "failed",
    exitCode: null,
    error: `SSM gave no outcome within ${Math.round(age / 1000)} s`,
  });
  return "finished";
}
