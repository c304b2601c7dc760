import type { CommandTarget } from "../plugins/target.js";
import { ApiError } from "./errors.js";

/**
 * The errors of a command sent to a workspace's instance — plugin programs and the commands
 * API alike: what THE running check found, and why SSM did not take the command. `stopped`
 * and `state-unknown` stay two codes, so nobody mistakes a flaky EC2 answer for a dead instance.
 */

/** 503: no instance yet or stopped (INSTANCE_NOT_RUNNING), or EC2 unclear (INSTANCE_STATE_UNKNOWN). */
export function targetError(target: Exclude<CommandTarget, { kind: "running" }>): ApiError {
  switch (target.kind) {
    case "no-instance":
      return new ApiError("INSTANCE_NOT_RUNNING", "The workspace has no instance yet.", {
        hint: "Its launch is pending; the sweep re-drives it. Try again once it is online.",
      });
    case "stopped":
      return new ApiError(
        "INSTANCE_NOT_RUNNING",
        `The workspace's instance ${target.instanceId} is not running (${target.state}).`,
        { hint: "POST /workspaces/{id}/restart launches a new one." },
      );
    case "state-unknown":
      return new ApiError(
        "INSTANCE_STATE_UNKNOWN",
        `Could not tell whether instance ${target.instanceId} is running: EC2 did not answer clearly (${target.error.code}). Nothing was changed.`,
        { hint: "This is usually transient; retry shortly." },
      );
    default: {
      const unreachable: never = target;
      throw new Error(`unhandled target ${JSON.stringify(unreachable)}`);
    }
  }
}

/** 503 INSTANCE_UNREACHABLE: the SSM agent is not Online; nothing was sent. */
export function unreachableError(pingStatus: string): ApiError {
  return new ApiError(
    "INSTANCE_UNREACHABLE",
    `The instance's SSM agent is not online (${pingStatus}); no command was sent.`,
    { hint: "A freshly launched instance registers with SSM within a few minutes." },
  );
}

/** 503 INSTANCE_STATE_UNKNOWN: SSM refused or failed the send; nothing was sent. */
export function sendError(error: { code: string }): ApiError {
  return new ApiError(
    "INSTANCE_STATE_UNKNOWN",
    `SSM did not accept the command (${error.code}); nothing was sent. Retry shortly.`,
  );
}

/** Every way a command can fail to be sent: the running check's refusals and SSM's. */
export type SendPathFailure =
  | Exclude<CommandTarget, { kind: "running" }>
  | { kind: "unreachable"; pingStatus: string }
  | { kind: "send-failed"; error: { code: string } };

const SEND_PATH_KINDS: ReadonlySet<string> = new Set<SendPathFailure["kind"]>([
  "no-instance",
  "stopped",
  "state-unknown",
  "unreachable",
  "send-failed",
]);

/** Whether an outcome is one of the {@link SendPathFailure}s, which {@link sendPathError} maps. */
export const isSendPathFailure = <T extends { kind: string }>(
  outcome: T,
): outcome is Extract<T, SendPathFailure> => SEND_PATH_KINDS.has(outcome.kind);

/** The 503 of a command that was not sent, whichever step refused it. */
export function sendPathError(failure: SendPathFailure): ApiError {
  switch (failure.kind) {
    case "unreachable":
      return unreachableError(failure.pingStatus);
    case "send-failed":
      return sendError(failure.error);
    default:
      return targetError(failure);
  }
}
