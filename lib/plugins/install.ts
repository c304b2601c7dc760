import { randomUUID } from "node:crypto";
import { type CommandResult, waitForCommand } from "../compute/commands.js";
import { presignGet, putStagedObject } from "../compute/staging-bucket.js";
import { remainingMs } from "../deadline.js";
import type { Deps } from "../deps.js";
import { recordActivity } from "../workspaces/activity.js";
import type { WorkspaceRow } from "../workspaces/model.js";
import { isPluginAllowed } from "./allowlist.js";
import {
  endFromResult,
  operationComment,
  operationTimeoutSeconds,
  PRESIGN_SECONDS,
  settleOperation,
} from "./operations.js";
import {
  type ClaimResult,
  claimInstall,
  endOperation,
  getWorkspacePlugin,
  type InstallClaim,
  noteSendUnknown,
  recordSent,
  type WorkspacePluginRow,
} from "./records.js";
import { installProgram } from "./scripts.js";
import type { PluginSource } from "./sources.js";
import { packPlugin, type StageFailure, type StageOptions, stagePlugin } from "./staging.js";
import { type CommandTarget, commandTarget, sendToTarget } from "./target.js";

// Inside the request's deadline (deps.deadline): what must follow the fetch (pack, claim, put,
// presign, send, record) and what the answer itself needs. Below SEND_RESERVE_MS the program is
// not started: the claim stays, with the archive staged, and the sweep sends it.
const AFTER_FETCH_RESERVE_MS = 6_000;
const PUT_RESERVE_MS = 4_000;
const SEND_RESERVE_MS = 2_500;
const ANSWER_MARGIN_MS = 1_000;

export type InstallOutcome =
  | { kind: "installed"; record: WorkspacePluginRow }
  /**
   * Not finished within `INSTALL_SYNC_WAIT_SECONDS`, or sent with its answer lost
   * (`commandId: null`); the sweep finishes it and `GET …/plugins` shows the outcome.
   */
  | { kind: "installing"; name: string; commandId: string | null }
  | { kind: "not-allowed"; name: string }
  | Exclude<CommandTarget, { kind: "running" }>
  | { kind: "stage-failed"; failure: StageFailure }
  /** Another operation on this plugin holds the record. */
  | { kind: "busy"; name: string; row: WorkspacePluginRow }
  | { kind: "workspace-removed" }
  /** Restarted or stopped since the running check: nothing was claimed or sent. */
  | { kind: "moved-on" }
  | { kind: "upload-failed"; transient: boolean; error: { code: string; message: string } }
  /** The request's deadline left no time to stage the archive; nothing was sent. */
  | { kind: "out-of-time" }
  | { kind: "unreachable"; pingStatus: string }
  | { kind: "send-failed"; error: { code: string; message: string } }
  | { kind: "command-failed"; name: string; message: string; result: CommandResult };

export interface InstallInput {
  workspace: WorkspaceRow;
  source: PluginSource;
  /** Expected canonical digest. */
  sha256?: string;
  /** Staging knobs (temp dir, fetch) for tests. */
  stage?: Omit<StageOptions, "sha256">;
}

/**
 * Installs a plugin on a workspace's instance — SPEC §7 steps 3 (allowlist by the source's
 * name) to 8. The caller has validated the body, loaded the workspace, refused removed and
 * external ones, and parsed the source.
 *
 * Order: allowlist (when the source names the plugin) → running check → stage → allowlist on
 * the manifest's name → pack → **claim the record** (one operation per plugin at a time; a second
 * is `busy`) → put to the staging bucket → presign → one SSM program → wait up to
 * `INSTALL_SYNC_WAIT_SECONDS`. Until the program is sent, any failure gives the claim back and
 * the record is as it was. A send whose answer was lost is `installing` with no command id — the
 * program may be running; the sweep confirms it (re-sending the idempotent program if need be),
 * it is never reported as "not sent".
 */
export async function installPlugin(deps: Deps, input: InstallInput): Promise<InstallOutcome> {
  const { workspace, source } = input;
  if (source.name !== null && !(await isPluginAllowed(deps.db, source.name))) {
    return { kind: "not-allowed", name: source.name };
  }
  const target = await commandTarget(deps, workspace);
  if (target.kind !== "running") return target;

  const staged = await stagePlugin(deps, source, {
    ...input.stage,
    ...(input.sha256 !== undefined && { sha256: input.sha256 }),
    ...(deps.deadline !== undefined && { fetchBy: deps.deadline.at - AFTER_FETCH_RESERVE_MS }),
  });
  if (staged.kind === "failed") return { kind: "stage-failed", failure: staged };
  const plugin = staged.plugin;
  try {
    const name = plugin.manifest.name;
    if (!(await isPluginAllowed(deps.db, name))) return { kind: "not-allowed", name };
    const packed = await packPlugin(plugin);
    const claim: InstallClaim = {
      workspaceId: workspace.id,
      name,
      opId: randomUUID(),
      instanceId: target.instanceId,
      version: plugin.manifest.version,
      source: source.canonical,
      digest: plugin.digest,
      archiveKey: stagedArchiveKey(name, packed.sha256),
      archiveSha256: packed.sha256,
      skills: plugin.manifest.skills,
    };
    const claimed = await claimOrSettle(deps, claim);
    if (claimed.kind === "busy") return { kind: "busy", name, row: claimed.row };
    if (claimed.kind === "workspace-removed" || claimed.kind === "moved-on") return claimed;
    // A plugin operation is real work: idle auto-stop waits.
    await recordActivity(deps, workspace.id);
    const key = { workspaceId: workspace.id, name, opId: claim.opId };
    const giveBack = (error: string) =>
      endOperation(deps.db, key, {
        kind: "unchanged",
        error: `install of ${claim.version}: ${error}`,
      });

    if (remainingMs(deps.deadline) < PUT_RESERVE_MS) {
      await giveBack("the request ran out of time before the archive was staged; nothing was sent");
      return { kind: "out-of-time" };
    }
    const put = await putStagedObject(deps, claim.archiveKey, packed.archive, "application/gzip");
    if (put.kind === "failed") {
      await giveBack(`staging the archive failed (${put.error.code}); nothing was sent`);
      return { kind: "upload-failed", transient: put.transient, error: put.error };
    }
    if (remainingMs(deps.deadline) < SEND_RESERVE_MS) {
      // Staged and claimed: the sweep sends the program (it finds nothing sent under the claim).
      return { kind: "installing", name, commandId: null };
    }
    const script = installProgram({
      name,
      url: await presignGet(deps, claim.archiveKey, PRESIGN_SECONDS),
      archiveSha256: packed.sha256,
      skills: plugin.manifest.skills,
      txn: claim.opId.replaceAll("-", "").slice(0, 16),
    });
    const sent = await sendToTarget(deps, target.instanceId, script, {
      timeoutSeconds: operationTimeoutSeconds("install"),
      comment: operationComment("install", name, claim.opId),
    });
    switch (sent.kind) {
      case "sent":
        break;
      case "send-unknown":
        await noteSendUnknown(deps.db, {
          ...key,
          instanceId: target.instanceId,
          error: `the install was sent but SSM's answer was lost (${sent.error.code}); the sweep confirms it`,
        });
        return { kind: "installing", name, commandId: null };
      case "unreachable":
      case "send-failed":
        await giveBack("SSM did not take the command; nothing was sent");
        return sent;
      default: {
        const unreachable: never = sent;
        throw new Error(`unhandled send ${JSON.stringify(unreachable)}`);
      }
    }
    await recordSent(deps.db, { ...key, commandId: sent.commandId, instanceId: target.instanceId });
    const deadline = Math.min(
      Date.now() + deps.config.installSyncWaitSeconds * 1000,
      Date.now() + remainingMs(deps.deadline) - ANSWER_MARGIN_MS,
    );
    const result = await waitForCommand(deps, sent.commandId, target.instanceId, deadline);
    if (result === null) return { kind: "installing", name, commandId: sent.commandId };
    const end = endFromResult("install", result);
    const ended = await endOperation(deps.db, key, end);
    if (end.kind !== "installed") {
      return { kind: "command-failed", name, message: "error" in end ? end.error : "", result };
    }
    // The sweep may have ended the claim first, having read the same result.
    const record = ended.row ?? (await getWorkspacePlugin(deps.db, claim));
    if (record?.state === "installed") return { kind: "installed", record };
    return { kind: "installing", name, commandId: sent.commandId };
  } finally {
    await plugin.cleanup();
  }
}

/**
 * Claims the record; if another operation holds it, reads that operation's command once — it may
 * have finished since its request answered 202 — and claims again if it had.
 */
async function claimOrSettle(deps: Deps, claim: InstallClaim): Promise<ClaimResult> {
  const first = await claimInstall(deps.db, claim);
  if (first.kind !== "busy") return first;
  if ((await settleOperation(deps, first.row)).kind !== "finished") return first;
  return claimInstall(deps.db, claim);
}

/** Content-addressed: the same archive always lands on the same key. */
export const stagedArchiveKey = (name: string, archiveSha256: string): string =>
  `plugins/${name}/${archiveSha256}.tar.gz`;
