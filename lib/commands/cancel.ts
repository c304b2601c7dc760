import { cancelCommand } from "../compute/commands.js";
import { awsErrorCode, describeAwsError, isTransientAwsError } from "../compute/errors.js";
import type { Deps } from "../deps.js";
import type { WorkspaceCommandRow } from "./records.js";
import { awaitCommand, type Settled } from "./settle.js";
import { isFinished } from "./status.js";

// How long a cancel waits for the agent to stop the command before answering 202: the agent
// kills the process group at once, so this is a little more than one read.
const CANCEL_WAIT_SECONDS = 5;

export type CancelOutcome =
  /** It has ended (cancelled now, or it had finished already). */
  | ({ kind: "finished" } & Settled)
  /** Asked to stop and not stopped yet; GET shows when it has. */
  | ({ kind: "cancelling" } & Settled)
  /** Its SendCommand answer was lost and the sweep has not found it yet: nothing to name. */
  | { kind: "unconfirmed"; row: WorkspaceCommandRow }
  | { kind: "cancel-failed"; error: { code: string; message: string } };

/**
 * Cancels a command (CancelCommand), then waits briefly for it to end. Cancelling a finished
 * command changes nothing and answers its outcome, so a retried cancel is harmless.
 */
export async function cancelWorkspaceCommand(
  deps: Deps,
  row: WorkspaceCommandRow,
): Promise<CancelOutcome> {
  if (!isFinished(row.status)) {
    if (row.ssmCommandId === null) return { kind: "unconfirmed", row };
    try {
      await cancelCommand(deps, row.ssmCommandId, row.instanceId);
    } catch (err) {
      // SSM no longer knows it as running (it ended meanwhile): the read below says how.
      if (isTransientAwsError(err) || awsErrorCode(err) !== "InvalidCommandId") {
        return { kind: "cancel-failed", error: describeAwsError(err) };
      }
    }
  }
  const settled = await awaitCommand(deps, row, isFinished(row.status) ? 0 : CANCEL_WAIT_SECONDS);
  return isFinished(settled.row.status)
    ? { kind: "finished", ...settled }
    : { kind: "cancelling", ...settled };
}
