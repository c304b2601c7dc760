import { findSentCommand, sendCommand } from "../compute/commands.js";
import { isTransientAwsError } from "../compute/errors.js";
import type { Deps } from "../deps.js";
import {
  ageMs,
  claimMs,
  endRow,
  operationComment,
  operationKind,
  operationMarker,
  operationProgram,
  operationTimeoutSeconds,
  settleOperation,
} from "./operations.js";
import {
  noteSendUnknown,
  type OperationEnd,
  recordSent,
  type WorkspacePluginRow,
} from "./records.js";

// An operation claimed on the current instance with no command recorded yet may still be in its
// request (uploading, sending); the sweep leaves it that long before acting on its own.
const SEND_SETTLE_MS = 60_000;
// How far before the claim's last write a lost command may have been sent (clock skew between
// the database and SSM).
const LOOKBACK_MS = 10 * 60_000;

/**
 * What {@link driveOperation} did: `finished` (the record was ended), `sent` (a command is now
 * recorded: found in SSM's history, or sent), `pending` (still running, or AWS could not say —
 * later), `skipped` (no operation holds the row any more).
 */
export type DriveOutcome = "finished" | "sent" | "pending" | "skipped";

/**
 * Drives an in-progress operation on — the sweep's plugins pass. First {@link settleOperation}
 * (read its command; end the record when it finished). When no command of it is known on the
 * workspace's current instance:
 *
 * - the send's answer was lost (or its request died): once the send has settled, SSM's history
 *   is searched for the claim's marker (ListCommands); found → that command is recorded and read
 *   from then on;
 * - never sent, or a restart moved the workspace to a new, empty instance: once the workspace
 *   can take a command, the program is sent. The programs are idempotent and take a per-plugin
 *   lock on the instance, so a send that did happen after all only repeats the same result;
 * - the instance is not running and no launch is under way → `failed` (an install: the record
 *   goes back to what the instance holds);
 * - the claim expired: SSM's history still decides — found → recorded and read; not there →
 *   never sent (an install goes back to what the instance holds); SSM cannot say → `failed`,
 *   which promises nothing about the files.
 */
export async function driveOperation(deps: Deps, row: WorkspacePluginRow): Promise<DriveOutcome> {
  const settled = await settleOperation(deps, row);
  if (settled.kind !== "unsent") return settled.kind;
  const { workspace } = settled;
  const kind = operationKind(row);
  const opId = row.opId ?? "";
  const key = { workspaceId: row.workspaceId, name: row.name, opId };
  const end = async (e: OperationEnd) => (await endRow(deps, row, e)).kind;
  const age = ageMs(deps, row);
  const current = workspace.instanceId;
  const sameInstance = row.instanceId !== null && row.instanceId === current;
  if (row.commandId === null && sameInstance && age < SEND_SETTLE_MS) return "pending";
  const up = workspace.status === "online" || workspace.status === "degraded";
  // Claimed on this very instance: SSM's ping decides whether it can be reached. A re-apply to a
  // new instance waits until readiness has brought the workspace online.
  if (current === null || (!sameInstance && !up)) {
    if (workspace.status === "provisioning") return "pending";
    return end({
      kind: kind === "install" ? "unchanged" : "failed",
      error: `the workspace's instance is not running (${workspace.status}); ${kind} it again once it is online`,
      keepFailed: true,
    });
  }
  if (sameInstance) {
    // Whether its send reached SSM decides, however old the claim: SSM's history first.
    const expired = age > claimMs(kind);
    let found: string | null;
    try {
      found = await findSentCommand(
        deps,
        current,
        operationMarker(opId),
        new Date(row.updatedAt.getTime() - LOOKBACK_MS),
      );
    } catch (err) {
      if (!isTransientAwsError(err)) throw err;
      if (!expired) return "pending";
      // Expired and SSM cannot say whether the program ran: the files are unknown, and `failed`
      // promises nothing about them (the previous version may or may not be in place).
      return end({
        kind: "failed",
        error: `the ${kind} could not be confirmed within ${Math.round(age / 1000)} s (SSM's history did not answer); ${kind} it again`,
      });
    }
    if (found !== null) {
      return (await recordSent(deps.db, { ...key, commandId: found, instanceId: current }))
        ? "sent"
        : "skipped";
    }
    if (expired) {
      // SSM never took it: the instance holds what it held before the claim.
      return end({
        kind: kind === "install" ? "unchanged" : "failed",
        error: `the ${kind} was never sent within ${Math.round(age / 1000)} s; ${kind} it again`,
        keepFailed: true,
      });
    }
  }
  const program = await operationProgram(deps, row);
  if (program === null) {
    return end({ kind: "failed", error: "no staged archive is recorded; install it again" });
  }
  const sent = await sendCommand(deps, current, program, {
    timeoutSeconds: operationTimeoutSeconds(kind),
    comment: operationComment(kind, row.name, opId),
  });
  switch (sent.kind) {
    case "sent":
      return (await recordSent(deps.db, { ...key, commandId: sent.commandId, instanceId: current }))
        ? "sent"
        : "skipped";
    case "unknown":
      await noteSendUnknown(deps.db, {
        ...key,
        instanceId: current,
        error: `the ${kind} was sent but SSM's answer was lost (${sent.error.code}); the sweep finds it in SSM's history`,
      });
      return "pending";
    case "unreachable":
    case "transient":
      return "pending";
    default: {
      const unreachable: never = sent;
      throw new Error(`unhandled send result ${JSON.stringify(unreachable)}`);
    }
  }
}
