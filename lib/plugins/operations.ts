import { randomBytes } from "node:crypto";
import { type CommandResult, readCommand, sendCommand } from "../compute/commands.js";
import { describeAwsError, isTransientAwsError } from "../compute/errors.js";
import { presignGet } from "../compute/staging-bucket.js";
import type { Deps } from "../deps.js";
import { getWorkspace } from "../workspaces/queries.js";
import {
  endOperation,
  INSTALL_CLAIM_SECONDS,
  INSTALL_COMMAND_TIMEOUT_SECONDS,
  noteSendUnknown,
  type OperationEnd,
  recordSent,
  UNINSTALL_CLAIM_SECONDS,
  UNINSTALL_COMMAND_TIMEOUT_SECONDS,
  type WorkspacePluginRow,
} from "./records.js";
import { installProgram, uninstallProgram } from "./scripts.js";
import { commandFailureText } from "./target.js";

/**
 * Plugin operations after their claim: how a command's result ends one, and how the sweep drives
 * on an operation whose request ended before it did. Nothing here stages or packs a plugin, so
 * the sweep carries no archive or manifest code.
 */

/** The presigned URL's lifetime: the program downloads right away, retries included. */
export const PRESIGN_SECONDS = 300;

// An operation claimed on the current instance with no command recorded yet may still be in its
// request (uploading, sending); the sweep leaves it that long before sending on its own.
const SEND_SETTLE_MS = 60_000;

export type OperationKind = "install" | "uninstall";

export const operationKind = (row: Pick<WorkspacePluginRow, "state">): OperationKind =>
  row.state === "uninstalling" ? "uninstall" : "install";

/**
 * What a finished program means for the record. A program that exited with a code ran its own
 * rollback (install: the swap is all-or-nothing), so a failed install leaves the files as they
 * were; one that was killed (timed out, cancelled) may have stopped anywhere: `failed`, with the
 * advice to repeat the operation, which is safe.
 */
export function endFromResult(kind: OperationKind, result: CommandResult): OperationEnd {
  if (result.ok) return kind === "install" ? { kind: "installed" } : { kind: "uninstalled" };
  const message = commandFailureText(result);
  const ranToAnExit = result.status === "Failed" && result.exitCode >= 0;
  if (kind === "install" && ranToAnExit) {
    return { kind: "unchanged", error: `install failed: ${message}`, keepFailed: true };
  }
  return { kind: "failed", error: `${kind} did not complete: ${message}` };
}

/** The program an operation sends; the install's archive URL is presigned afresh each time. */
export async function operationProgram(deps: Deps, row: WorkspacePluginRow) {
  const txn = randomBytes(8).toString("hex");
  if (operationKind(row) === "uninstall") return uninstallProgram({ name: row.name, txn });
  if (row.archiveKey === null || row.archiveSha256 === null) return null;
  return installProgram({
    name: row.name,
    url: await presignGet(deps, row.archiveKey, PRESIGN_SECONDS),
    archiveSha256: row.archiveSha256,
    skills: row.skills,
    txn,
  });
}

export const operationTimeoutSeconds = (kind: OperationKind) =>
  kind === "install" ? INSTALL_COMMAND_TIMEOUT_SECONDS : UNINSTALL_COMMAND_TIMEOUT_SECONDS;

export const operationComment = (kind: OperationKind, name: string) =>
  `wcp: ${kind} plugin ${name}`;

/**
 * What {@link driveOperation} did: `finished` (the record was ended), `sent` (the program was
 * sent, or sent again), `pending` (still running, or AWS could not say — later), `skipped` (no
 * operation holds the row any more).
 */
export type DriveOutcome = "finished" | "sent" | "pending" | "skipped";

/**
 * Drives an in-progress operation on — the sweep's plugins pass, and a request that finds the row
 * claimed. Safe to run twice: every write names the operation's `op_id`.
 *
 * - its command ran on the workspace's current instance: read it; finished → end the record;
 *   still running past the claim's expiry → `failed`;
 * - no command is known on the current instance (the send's answer was lost, the request died
 *   before sending, or a restart moved the workspace to a new instance): once the workspace is
 *   online, send the program (again). The programs are idempotent and take a per-plugin lock on
 *   the instance, so a send that did happen after all only repeats the same result;
 * - the workspace is removed, or its instance is not running and no launch is under way → `failed`.
 *
 * `sendAllowed: false` (a request) only reads; it never sends on the sweep's behalf.
 */
export async function driveOperation(
  deps: Deps,
  row: WorkspacePluginRow,
  opts: { sendAllowed: boolean },
): Promise<DriveOutcome> {
  if ((row.state !== "installing" && row.state !== "uninstalling") || row.opId === null) {
    return "skipped";
  }
  const kind = operationKind(row);
  const key = { workspaceId: row.workspaceId, name: row.name, opId: row.opId };
  const end = async (e: OperationEnd): Promise<DriveOutcome> =>
    (await endOperation(deps.db, key, e)).done ? "finished" : "skipped";
  const age = deps.clock.now().getTime() - row.updatedAt.getTime();
  const claimMs = (kind === "install" ? INSTALL_CLAIM_SECONDS : UNINSTALL_CLAIM_SECONDS) * 1000;

  const workspace = await getWorkspace(deps.db, row.workspaceId);
  if (!workspace || workspace.status === "removing" || workspace.status === "removed") {
    return end({ kind: "failed", error: `the workspace was removed before the ${kind} finished` });
  }
  const current = workspace.instanceId;
  if (row.commandId !== null && row.instanceId !== null && row.instanceId === current) {
    let result: CommandResult | null;
    try {
      result = await readCommand(deps, row.commandId, current);
    } catch (err) {
      if (isTransientAwsError(err)) return "pending";
      const e = describeAwsError(err);
      return end({ kind: "failed", error: `SSM does not know the ${kind} command (${e.code})` });
    }
    if (result) return end(endFromResult(kind, result));
    if (age <= claimMs) return "pending";
    return end({
      kind: "failed",
      error: `the ${kind} command did not finish within ${Math.round(age / 1000)} s`,
    });
  }

  if (!opts.sendAllowed) return "pending";
  const sameInstance = row.instanceId !== null && row.instanceId === current;
  if (row.commandId === null && sameInstance && age < SEND_SETTLE_MS) return "pending";
  const up = workspace.status === "online" || workspace.status === "degraded";
  // Sent (or claimed) on this very instance: SSM's ping decides whether it can be reached. A
  // re-apply to a new instance waits until readiness has brought the workspace online.
  if (current === null || (!sameInstance && !up)) {
    if (workspace.status === "provisioning") return "pending";
    return end({
      kind: kind === "install" ? "unchanged" : "failed",
      error: `the workspace's instance is not running (${workspace.status}); ${kind} it again once it is online`,
      keepFailed: true,
    });
  }
  if (sameInstance && age > claimMs) {
    return end({
      kind: kind === "install" ? "unchanged" : "failed",
      error: `the ${kind} could not be confirmed within ${Math.round(age / 1000)} s; ${kind} it again`,
      keepFailed: true,
    });
  }
  const program = await operationProgram(deps, row);
  if (program === null) {
    return end({ kind: "failed", error: "no staged archive is recorded; install it again" });
  }
  const sent = await sendCommand(deps, current, program, {
    timeoutSeconds: operationTimeoutSeconds(kind),
    comment: operationComment(kind, row.name),
  });
  switch (sent.kind) {
    case "sent":
      return (await recordSent(deps.db, { ...key, commandId: sent.commandId, instanceId: current }))
        ? "sent"
        : "skipped";
    case "unknown":
      await noteSendUnknown(deps.db, {
        ...key,
        error: `the ${kind} was sent but SSM's answer was lost (${sent.error.code}); it is confirmed by the next sweep`,
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
