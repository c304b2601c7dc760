import { randomBytes } from "node:crypto";
import { type CommandResult, readCommand } from "../compute/commands.js";
import { describeAwsError, isTransientAwsError } from "../compute/errors.js";
import { presignGet } from "../compute/staging-bucket.js";
import type { Deps } from "../deps.js";
import type { WorkspaceRow } from "../workspaces/model.js";
import { getWorkspace } from "../workspaces/queries.js";
import {
  endOperation,
  INSTALL_CLAIM_SECONDS,
  INSTALL_COMMAND_TIMEOUT_SECONDS,
  type OperationEnd,
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

/** What names an operation's commands in SSM's history: unique per claim. */
export const operationMarker = (opId: string) => `wcp op ${opId}`;

/** The SendCommand Comment (at most 100 characters): the marker first, so it is never cut. */
export const operationComment = (kind: OperationKind, name: string, opId: string) =>
  `${operationMarker(opId)} ${kind} plugin ${name}`.slice(0, 100);

/**
 * What {@link settleOperation} found: `finished` (the record was ended), `pending` (its command
 * still runs, or AWS could not say — later), `skipped` (no operation holds the row any more), or
 * `unsent`: no command of the operation is known on the workspace's current instance (the send's
 * answer was lost, the request died before sending, or a restart moved the workspace on) — the
 * sweep's {@link driveOperation} takes it from there.
 */
export type SettleOutcome =
  | { kind: "finished" | "pending" | "skipped" }
  | { kind: "unsent"; workspace: WorkspaceRow };

/**
 * Reads an in-progress operation's command and ends the record if it finished — a request that
 * finds the row claimed, and the first step of the sweep's {@link driveOperation}. Only reads
 * SSM; never sends. Safe to run twice: every write names the operation's `op_id`.
 *
 * - its command ran on the workspace's current instance: finished → end the record; still
 *   running past the claim's expiry → `failed`; SSM does not know it → `failed`;
 * - the workspace is removed → `failed`.
 */
export async function settleOperation(deps: Deps, row: WorkspacePluginRow): Promise<SettleOutcome> {
  if ((row.state !== "installing" && row.state !== "uninstalling") || row.opId === null) {
    return { kind: "skipped" };
  }
  const kind = operationKind(row);
  const end = (e: OperationEnd) => endRow(deps, row, e);
  const workspace = await getWorkspace(deps.db, row.workspaceId);
  if (!workspace || workspace.status === "removing" || workspace.status === "removed") {
    return end({ kind: "failed", error: `the workspace was removed before the ${kind} finished` });
  }
  const current = workspace.instanceId;
  if (row.commandId === null || row.instanceId === null || row.instanceId !== current) {
    return { kind: "unsent", workspace };
  }
  let result: CommandResult | null;
  try {
    result = await readCommand(deps, row.commandId, current);
  } catch (err) {
    if (isTransientAwsError(err)) return { kind: "pending" };
    const e = describeAwsError(err);
    return end({ kind: "failed", error: `SSM does not know the ${kind} command (${e.code})` });
  }
  if (result) return end(endFromResult(kind, result));
  const age = ageMs(deps, row);
  if (age <= claimMs(kind)) return { kind: "pending" };
  return end({
    kind: "failed",
    error: `the ${kind} command did not finish within ${Math.round(age / 1000)} s`,
  });
}

/** Ends the operation holding `row`: `finished`, or `skipped` when it moved on meanwhile. */
export async function endRow(
  deps: Deps,
  row: WorkspacePluginRow,
  e: OperationEnd,
): Promise<{ kind: "finished" | "skipped" }> {
  const key = { workspaceId: row.workspaceId, name: row.name, opId: row.opId ?? "" };
  return (await endOperation(deps.db, key, e)).done ? { kind: "finished" } : { kind: "skipped" };
}

export const ageMs = (deps: Pick<Deps, "clock">, row: Pick<WorkspacePluginRow, "updatedAt">) =>
  deps.clock.now().getTime() - row.updatedAt.getTime();

export const claimMs = (kind: OperationKind) =>
  (kind === "install" ? INSTALL_CLAIM_SECONDS : UNINSTALL_CLAIM_SECONDS) * 1000;
