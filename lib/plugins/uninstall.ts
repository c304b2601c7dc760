import { randomUUID } from "node:crypto";
import { type CommandResult, waitForCommand } from "../compute/commands.js";
import { remainingMs } from "../deadline.js";
import type { Deps } from "../deps.js";
import { recordActivity } from "../workspaces/activity.js";
import type { WorkspaceRow } from "../workspaces/model.js";
import {
  endFromResult,
  operationComment,
  operationTimeoutSeconds,
  settleOperation,
} from "./operations.js";
import {
  claimUninstall,
  endOperation,
  getWorkspacePlugin,
  noteSendUnknown,
  recordSent,
  type WorkspacePluginRow,
} from "./records.js";
import { uninstallProgram } from "./scripts.js";
import { type CommandTarget, commandFailureText, commandTarget, sendToTarget } from "./target.js";

// Removing two directories takes well under a second; the wait stays far inside API Gateway's
// 30 s, and a program still running after it is finished by the sweep (202).
const UNINSTALL_WAIT_SECONDS = 20;
const ANSWER_MARGIN_MS = 1_000;

export type UninstallOutcome =
  | { kind: "uninstalled" }
  /** Still running after the wait, or sent with its answer lost; the sweep finishes it. */
  | { kind: "uninstalling"; commandId: string | null }
  | { kind: "not-installed" }
  /** Another operation on this plugin holds the record. */
  | { kind: "busy"; row: WorkspacePluginRow }
  | { kind: "workspace-removed" }
  /** Restarted or stopped since the running check: nothing was claimed or sent. */
  | { kind: "moved-on" }
  | Exclude<CommandTarget, { kind: "running" }>
  | { kind: "unreachable"; pingStatus: string }
  | { kind: "send-failed"; error: { code: string; message: string } }
  | { kind: "command-failed"; message: string; result: CommandResult | null };

/**
 * Uninstalls a plugin — after the caller's name, workspace and external-runtime checks:
 * no record → `not-installed`; running check; **claim the record** (an operation in progress →
 * `busy`); one program removes the plugin's skills and directory, exit code checked; the record is
 * deleted. A failed uninstall leaves the row `failed` with the error — the files may be partly
 * gone — and calling uninstall again retries it. Not sent → the record is as it was.
 */
export async function uninstallPlugin(
  deps: Deps,
  input: { workspace: WorkspaceRow; name: string },
): Promise<UninstallOutcome> {
  const key = { workspaceId: input.workspace.id, name: input.name };
  const existing = await getWorkspacePlugin(deps.db, key);
  if (!existing) return { kind: "not-installed" };
  const target = await commandTarget(deps, input.workspace);
  if (target.kind !== "running") return target;

  const opId = randomUUID();
  const claim = { ...key, opId, instanceId: target.instanceId };
  let claimed = await claimUninstall(deps.db, claim);
  if (claimed?.kind === "busy") {
    if ((await settleOperation(deps, claimed.row)).kind === "finished") {
      claimed = await claimUninstall(deps.db, claim);
    }
  }
  if (claimed === null) return { kind: "not-installed" };
  if (claimed.kind === "busy") return { kind: "busy", row: claimed.row };
  if (claimed.kind === "workspace-removed" || claimed.kind === "moved-on") return claimed;
  // A plugin operation is real work: idle auto-stop waits.
  await recordActivity(deps, input.workspace.id);

  const sent = await sendToTarget(
    deps,
    target.instanceId,
    uninstallProgram({ name: input.name, txn: opId.replaceAll("-", "").slice(0, 16) }),
    {
      timeoutSeconds: operationTimeoutSeconds("uninstall"),
      comment: operationComment("uninstall", input.name, opId),
    },
  );
  const op = { ...key, opId };
  switch (sent.kind) {
    case "sent":
      break;
    case "send-unknown":
      await noteSendUnknown(deps.db, {
        ...op,
        instanceId: target.instanceId,
        error: `the uninstall was sent but SSM's answer was lost (${sent.error.code}); the sweep confirms it`,
      });
      return { kind: "uninstalling", commandId: null };
    case "unreachable":
    case "send-failed":
      await endOperation(deps.db, op, {
        kind: "unchanged",
        error: "uninstall: SSM did not take the command; nothing was sent",
      });
      return sent;
    default: {
      const unreachable: never = sent;
      throw new Error(`unhandled send ${JSON.stringify(unreachable)}`);
    }
  }
  await recordSent(deps.db, { ...op, commandId: sent.commandId, instanceId: target.instanceId });
  // Never past the request's own deadline: the answer must leave before API Gateway gives up.
  const deadline = Math.min(
    Date.now() + UNINSTALL_WAIT_SECONDS * 1000,
    Date.now() + remainingMs(deps.deadline) - ANSWER_MARGIN_MS,
  );
  const result = await waitForCommand(deps, sent.commandId, target.instanceId, deadline);
  if (result === null) return { kind: "uninstalling", commandId: sent.commandId };
  await endOperation(deps.db, op, endFromResult("uninstall", result));
  if (result.ok) return { kind: "uninstalled" };
  return { kind: "command-failed", message: commandFailureText(result), result };
}
