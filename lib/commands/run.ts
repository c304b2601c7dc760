import { createHmac } from "node:crypto";
import type { Program } from "../compute/script.js";
import { REQUEST_DEADLINE_SECONDS } from "../config.js";
import { remainingMs } from "../deadline.js";
import type { Deps } from "../deps.js";
import { type CommandTarget, commandTarget, sendToTarget } from "../plugins/target.js";
import { unhandled } from "../unhandled.js";
import { recordActivity } from "../workspaces/activity.js";
import { isExternal, type WorkspaceRow } from "../workspaces/model.js";
import { commandOutputLocation } from "./output.js";
import { type CommandSpec, envEntries, scriptDigest } from "./program.js";
import {
  claimCommand,
  endCommand,
  findByIdempotencyKey,
  getCommand,
  noteSendUnknown,
  recordSent,
  type WorkspaceCommandRow,
} from "./records.js";
import { awaitCommand, type Settled } from "./settle.js";
import { isFinished } from "./status.js";

/**
 * The longest `waitSeconds` a request may ask for: the request's deadline (29 s) less the
 * running check, the record, SendCommand and the answer. The wait is cut to what the request
 * has left in any case.
 */
export const MAX_WAIT_SECONDS = REQUEST_DEADLINE_SECONDS - 4;

// Below this much of the request's deadline the command is not sent: its record is ended as
// never sent, and the caller may retry (SendCommand, its record and the answer need the rest).
const SEND_RESERVE_MS = 2_500;

export interface RunCommandInput {
  workspace: WorkspaceRow;
  spec: CommandSpec;
  /** The spec built by {@link buildCommandProgram}: what is sent. */
  program: Program;
  timeoutSeconds: number;
  /** How long to wait for the result before answering 202 (cut to the request's deadline). */
  waitSeconds: number;
  /** `admin`, or `token:<prefix>`. */
  requestedBy: string;
  idempotencyKey?: string | undefined;
}

export type RunOutcome =
  /** Finished within the wait (or replayed finished): the record and SSM's last read. */
  | ({ kind: "finished" } & Settled)
  /** Sent (or its answer lost) and not finished yet; GET …/commands/:id shows the rest. */
  | ({ kind: "accepted" } & Settled)
  | { kind: "workspace-removed" }
  | { kind: "workspace-stopped"; status: "stopping" | "stopped" | "starting" }
  | { kind: "external" }
  | { kind: "key-reused" }
  /** Removed or restarted between the running check and the record: nothing was recorded. */
  | { kind: "moved-on" }
  | Exclude<CommandTarget, { kind: "running" }>
  | { kind: "unreachable"; pingStatus: string; row: WorkspaceCommandRow }
  | { kind: "send-failed"; error: { code: string; message: string }; row: WorkspaceCommandRow }
  | { kind: "out-of-time"; row: WorkspaceCommandRow };

/**
 * Whether the workspace's state lets a command be sent at all, before the running check: one
 * exhaustive switch, so a new status (a stopped workspace, say) cannot be forgotten here.
 */
function precondition(workspace: WorkspaceRow): RunOutcome | null {
  if (isExternal(workspace)) return { kind: "external" };
  switch (workspace.status) {
    case "removing":
    case "removed":
      return { kind: "workspace-removed" };
    case "stopping":
    case "stopped":
    case "starting":
      // The route woke it or refused it first; this one changed state since.
      return { kind: "workspace-stopped", status: workspace.status };
    case "provisioning":
    case "awaiting_agent":
    case "online":
    case "degraded":
    case "offline":
    case "failed":
      // The running check and SSM's ping decide.
      return null;
    default:
      return unhandled("workspace status", workspace.status);
  }
}

/**
 * Runs a command on a workspace's instance — the caller has validated the body and built the
 * program. Order: the workspace's state (removed → `workspace-removed`, external), a replay by
 * Idempotency-Key (same key and request: that command again, never a second run), THE running
 * check, the **record** (before anything is sent), SendCommand (the agent's ping first; output
 * to the staging bucket under `commands/`), then a wait of up to `waitSeconds`.
 *
 * Not sent (agent offline, SSM refused, no time left): the record ends `undeliverable` and gives
 * up its Idempotency-Key, so a retry is a new attempt. Sent with its answer lost: the record
 * stays `pending` with no SSM id and the sweep finds the command in SSM's history (or ends the
 * record `undeliverable` when SSM never took it); it is never sent again.
 */
export async function runWorkspaceCommand(deps: Deps, input: RunCommandInput): Promise<RunOutcome> {
  const { workspace } = input;
  const refused = precondition(workspace);
  if (refused) return refused;
  const idempotency =
    input.idempotencyKey === undefined
      ? null
      : { key: input.idempotencyKey, hash: requestFingerprint(deps, input) };
  if (idempotency) {
    const existing = await findByIdempotencyKey(deps.db, workspace.id, idempotency.key);
    if (existing) return replay(deps, existing, idempotency.hash, input.waitSeconds);
  }
  const target = await commandTarget(deps, workspace);
  if (target.kind !== "running") return target;

  const { what, env, cwd } = input.spec;
  const claimed = await claimCommand(deps.db, {
    workspaceId: workspace.id,
    instanceId: target.instanceId,
    requestedBy: input.requestedBy,
    kind: what.kind,
    argv: what.kind === "argv" ? [...what.argv] : null,
    script: what.kind === "script" ? scriptDigest(what.script) : null,
    cwd: cwd ?? null,
    envKeys: envEntries(env).map(([key]) => key),
    timeoutSeconds: input.timeoutSeconds,
    idempotency,
  });
  switch (claimed.kind) {
    case "claimed":
      break;
    case "replayed":
      return replay(deps, claimed.row, idempotency?.hash ?? "", input.waitSeconds);
    case "key-reused":
    case "moved-on":
      return claimed;
    default:
      return unhandled("claim", claimed);
  }
  const row = claimed.row;
  const notSent = (error: string) =>
    endCommand(deps.db, row, {
      status: "undeliverable",
      exitCode: null,
      error,
      releaseKey: true,
    }).then((ended) => ended ?? row);

  if (remainingMs(deps.deadline) < SEND_RESERVE_MS) {
    return { kind: "out-of-time", row: await notSent("the request ran out of time; not sent") };
  }
  const sent = await sendToTarget(deps, target.instanceId, input.program, {
    timeoutSeconds: input.timeoutSeconds,
    comment: commandComment(row),
    output: commandOutputLocation(deps, workspace.id),
  });
  switch (sent.kind) {
    case "sent":
      await recordSent(deps.db, row.id, sent.commandId);
      await recordActivity(deps, workspace.id);
      break;
    case "send-unknown":
      // It may well run: as much activity as a command confirmed sent.
      await recordActivity(deps, workspace.id);
      await noteSendUnknown(
        deps.db,
        row.id,
        `the command was sent but SSM's answer was lost (${sent.error.code}); the sweep confirms it`,
      );
      return { kind: "accepted", row, invocation: null };
    case "unreachable":
      return {
        ...sent,
        row: await notSent(`not sent: the instance's SSM agent is ${sent.pingStatus}`),
      };
    case "send-failed":
      return {
        ...sent,
        row: await notSent(`not sent: SSM did not take the command (${sent.error.code})`),
      };
    default:
      return unhandled("send", sent);
  }
  return answer(
    await awaitCommand(deps, { ...row, ssmCommandId: sent.commandId }, input.waitSeconds),
  );
}

/**
 * A retried request with the same key: the command it started, waited on as asked now. When
 * the first request is still sending it (no SSM id yet), the wait first watches the record.
 */
async function replay(
  deps: Deps,
  row: WorkspaceCommandRow,
  hash: string,
  waitSeconds: number,
): Promise<RunOutcome> {
  if (row.requestHash !== hash) return { kind: "key-reused" };
  // Never past the request's deadline less the answer's margin (awaitCommand cuts it too).
  const until = Date.now() + Math.min(waitSeconds * 1000, remainingMs(deps.deadline) - 1_000);
  let current = row;
  while (current.ssmCommandId === null && !isFinished(current.status) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, Math.min(RECORD_POLL_MS, until - Date.now())));
    current = (await getCommand(deps.db, row.workspaceId, row.id)) ?? current;
  }
  return answer(await awaitCommand(deps, current, Math.max(0, (until - Date.now()) / 1000)));
}

// How often a replay looks at a record the first request is still sending.
const RECORD_POLL_MS = 100;

const answer = (s: Settled): RunOutcome =>
  isFinished(s.row.status) ? { kind: "finished", ...s } : { kind: "accepted", ...s };

/** What names a command in SSM's history; the record's id is unique, so it is the claim. */
export const commandMarker = (commandId: string) => `wcp cmd ${commandId}`;

/** The SendCommand Comment (at most 100 characters): the marker first, so it is never cut. */
const commandComment = (row: Pick<WorkspaceCommandRow, "id" | "kind">) =>
  `${commandMarker(row.id)} ${row.kind}`;

/**
 * What a retry must repeat exactly to be a replay: the command, its env, cwd and timeout (not
 * the wait, which only changes how long this request waits). Keyed with the admin token, so the
 * stored hash cannot be tested against guessed env values.
 */
function requestFingerprint(deps: Pick<Deps, "config">, input: RunCommandInput): string {
  const { what, env, cwd } = input.spec;
  const canonical = JSON.stringify([
    what.kind,
    what.kind === "argv" ? what.argv : what.script,
    envEntries(env),
    cwd ?? null,
    input.timeoutSeconds,
  ]);
  return createHmac("sha256", deps.config.adminToken ?? "")
    .update(`command-request:${canonical}`)
    .digest("hex");
}
