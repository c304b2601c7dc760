import { type CommandDrive, driveCommand } from "../commands/reconcile.js";
import { unfinishedCommands } from "../commands/records.js";
import { driveInBatches, type PassContext, type PassCounts, type RowOutcome } from "./types.js";

// A record ended or a lost send found is a change; `pending` is AWS not saying yet.
const COUNTED: Record<CommandDrive, RowOutcome> = {
  finished: "changed",
  found: "changed",
  pending: "transient",
  skipped: "unchanged",
};

/**
 * Commands: records whose requests ended before their commands did — the API answered 202, the
 * send's answer was lost, the request died. Each is driven on ({@link driveCommand}): its
 * invocation's outcome ends the record, a lost send is found in SSM's history (or, never taken,
 * ends `undeliverable`). Nothing is ever sent from here. Still running: the next run.
 */
export function sweepCommands(ctx: PassContext): Promise<PassCounts> {
  return driveInBatches(ctx, {
    start: 0,
    fetch: (afterSeq, limit) => unfinishedCommands(ctx.deps.db, afterSeq, limit),
    next: (row) => row.seq,
    what: "command record",
    ids: (row) => ({ workspaceId: row.workspaceId, commandId: row.id }),
    drive: async (row) => COUNTED[await driveCommand(ctx.deps, row)],
  });
}
