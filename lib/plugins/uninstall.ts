import { randomBytes } from "node:crypto";
import { type CommandResult, cancelCommand, waitForCommand } from "../compute/commands.js";
import type { Deps } from "../deps.js";
import type { WorkspaceRow } from "../workspaces/model.js";
import { finishInstall } from "./install.js";
import {
  deleteUninstalled,
  getWorkspacePlugin,
  recordUninstallFailed,
  recordUninstalling,
} from "./records.js";
import { uninstallProgram } from "./scripts.js";
import { type CommandTarget, commandFailureText, commandTarget, sendToTarget } from "./target.js";

const UNINSTALL_COMMAND_TIMEOUT_SECONDS = 60;
// Removing two directories takes well under a second; the wait stays far inside API Gateway's
// 30 s so the answer is always the command's own.
const UNINSTALL_WAIT_SECONDS = 20;

export type UninstallOutcome =
  | { kind: "uninstalled" }
  | { kind: "not-installed" }
  /** An install of this plugin is still running; removing now would race it. */
  | { kind: "busy"; commandId: string | null }
  | Exclude<CommandTarget, { kind: "running" }>
  | { kind: "unreachable"; pingStatus: string }
  | { kind: "send-failed"; error: { code: string; message: string } }
  | { kind: "command-failed"; message: string; result: CommandResult | null };

/**
 * Uninstalls a plugin — after the caller's name, workspace and external-runtime checks:
 * no record → `not-installed`; an install still running → `busy`; running check; one program
 * removes the plugin's skills and directory, exit code checked; the record is deleted.
 *
 * Synchronous: the program is short, so the request waits for it (at most 20 s, then it is
 * cancelled and reported failed). A failed uninstall leaves the row `failed` with the error —
 * the files may be partly gone — and calling uninstall again retries it.
 */
export async function uninstallPlugin(
  deps: Deps,
  input: { workspace: WorkspaceRow; name: string },
): Promise<UninstallOutcome> {
  const key = { workspaceId: input.workspace.id, name: input.name };
  let row = await getWorkspacePlugin(deps.db, key);
  if (!row) return { kind: "not-installed" };
  if (row.state === "installing") {
    if ((await finishInstall(deps, key)) === "pending") {
      return { kind: "busy", commandId: row.commandId };
    }
    row = await getWorkspacePlugin(deps.db, key);
    if (!row) return { kind: "not-installed" };
  }
  const target = await commandTarget(deps, input.workspace);
  if (target.kind !== "running") return target;

  const sent = await sendToTarget(
    deps,
    target.instanceId,
    uninstallProgram({ name: input.name, txn: randomBytes(8).toString("hex") }),
    {
      timeoutSeconds: UNINSTALL_COMMAND_TIMEOUT_SECONDS,
      comment: `wcp: uninstall plugin ${input.name}`,
    },
  );
  if (sent.kind !== "sent") return sent;
  const commandId = sent.commandId;
  await recordUninstalling(deps.db, { ...key, commandId });
  const deadline = Date.now() + UNINSTALL_WAIT_SECONDS * 1000;
  const result = await waitForCommand(deps, commandId, target.instanceId, deadline);
  if (result?.ok) {
    await deleteUninstalled(deps.db, { ...key, commandId });
    return { kind: "uninstalled" };
  }
  let message: string;
  if (result === null) {
    try {
      await cancelCommand(deps, commandId, target.instanceId);
    } catch {
      // Best effort: executionTimeout stops it on the instance regardless.
    }
    message = `The uninstall command did not finish within ${UNINSTALL_WAIT_SECONDS} s; cancelled.`;
  } else {
    message = commandFailureText(result);
  }
  await recordUninstallFailed(deps.db, { ...key, commandId, error: `uninstall: ${message}` });
  return { kind: "command-failed", message, result };
}
