import { type SendOptions, sendCommand } from "../compute/commands.js";
import { checkInstance } from "../compute/instances.js";
import type { Program } from "../compute/script.js";
import type { Deps } from "../deps.js";
import type { WorkspaceRow } from "../workspaces/model.js";

/**
 * The instance a plugin command goes to, decided by THE running check. `stopped` and
 * `transient` stay distinct all the way to the API (503 INSTANCE_NOT_RUNNING vs 503
 * INSTANCE_STATE_UNKNOWN): a flaky EC2 answer must never read as a dead instance.
 */
export type CommandTarget =
  | { kind: "running"; instanceId: string }
  /** The workspace has no instance yet (launch pending) — nothing to run a command on. */
  | { kind: "no-instance" }
  | { kind: "stopped"; instanceId: string; state: string }
  | { kind: "state-unknown"; instanceId: string; error: { code: string; message: string } };

/**
 * Runs THE running check for a workspace: `running` (send the command), `no-instance` (launch
 * pending), `stopped`, or `state-unknown` (EC2 did not answer clearly — never read as stopped).
 */
export async function commandTarget(deps: Deps, workspace: WorkspaceRow): Promise<CommandTarget> {
  if (workspace.instanceId === null) return { kind: "no-instance" };
  const check = await checkInstance(deps, workspace.instanceId, workspace.launchedAt);
  switch (check.outcome) {
    case "running":
      return { kind: "running", instanceId: check.instanceId };
    case "stopped":
      return { kind: "stopped", instanceId: check.instanceId, state: check.state };
    case "transient":
      return { kind: "state-unknown", instanceId: check.instanceId, error: check.error };
    default: {
      const unreachable: never = check;
      throw new Error(`unhandled outcome ${JSON.stringify(unreachable)}`);
    }
  }
}

/** A plugin program sent to a running target, or why it was not. */
export type TargetSend =
  | { kind: "sent"; commandId: string }
  | { kind: "unreachable"; pingStatus: string }
  | { kind: "send-failed"; error: { code: string; message: string } }
  /** The send's answer was lost: the program may be running. Reconciled, never resent blindly. */
  | { kind: "send-unknown"; error: { code: string; message: string } };

/** Sends a plugin program (install or uninstall) to the instance the running check chose. */
export async function sendToTarget(
  deps: Deps,
  instanceId: string,
  script: Program,
  opts: SendOptions,
): Promise<TargetSend> {
  const sent = await sendCommand(deps, instanceId, script, opts);
  switch (sent.kind) {
    case "sent":
      return sent;
    case "unreachable":
      return { kind: "unreachable", pingStatus: sent.pingStatus };
    case "transient":
      return { kind: "send-failed", error: sent.error };
    case "unknown":
      return { kind: "send-unknown", error: sent.error };
    default: {
      const unreachable: never = sent;
      throw new Error(`unhandled send result ${JSON.stringify(unreachable)}`);
    }
  }
}

// Presigned URLs carry a credential id and a signature; a command's stderr (curl's error) or an
// SDK message may echo one. Keep the URL, drop the query.
const URL_QUERY = /(https?:\/\/[^\s?"']+)\?[^\s"']*/g;

/**
 * A command's failure as a short, safe message: status, exit code and the *end* of stderr
 * (where the reason is), without URL query strings, at most ~300 characters of output.
 */
export function commandFailureText(result: {
  status: string;
  statusDetails: string;
  exitCode: number;
  stderr: string;
  stdout: string;
}): string {
  const output = (result.stderr.trim() || result.stdout.trim()).replace(URL_QUERY, "$1?…");
  const tail = output.length > 300 ? `…${output.slice(-300)}` : output;
  const head = `${result.statusDetails || result.status} (exit ${result.exitCode})`;
  return tail === "" ? head : `${head}: ${tail}`;
}
