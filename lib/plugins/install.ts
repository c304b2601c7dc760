import { randomBytes } from "node:crypto";
import { type CommandResult, readCommand, waitForCommand } from "../compute/commands.js";
import { describeAwsError, isTransientAwsError } from "../compute/errors.js";
import { presignGet, putStagedObject } from "../compute/staging-bucket.js";
import type { Deps } from "../deps.js";
import type { WorkspaceRow } from "../workspaces/model.js";
import { getWorkspace } from "../workspaces/queries.js";
import { isPluginAllowed } from "./allowlist.js";
import {
  getWorkspacePlugin,
  type PluginKey,
  recordInstalling,
  recordInstallResult,
  type WorkspacePluginRow,
} from "./records.js";
import { installProgram } from "./scripts.js";
import type { PluginSource } from "./sources.js";
import { packPlugin, type StageFailure, type StageOptions, stagePlugin } from "./staging.js";
import { type CommandTarget, commandFailureText, commandTarget, sendToTarget } from "./target.js";

/** How long the install program may run on the instance (SSM executionTimeout). */
export const INSTALL_COMMAND_TIMEOUT_SECONDS = 300;
/** The presigned URL's lifetime: the program downloads right away, retries included. */
export const PRESIGN_SECONDS = 300;
// An `installing` row whose command has not answered for this long is given up on: the command
// no longer exists, ran on an instance that has since been replaced, or was never recorded.
const GIVE_UP_AFTER_MS = (INSTALL_COMMAND_TIMEOUT_SECONDS + 120) * 1000;

export type InstallOutcome =
  | { kind: "installed"; record: WorkspacePluginRow }
  /** Still running after `INSTALL_SYNC_WAIT_SECONDS`; the sweep finishes it. */
  | { kind: "installing"; name: string; commandId: string }
  | { kind: "not-allowed"; name: string }
  | Exclude<CommandTarget, { kind: "running" }>
  | { kind: "stage-failed"; failure: StageFailure }
  /** Another install of this plugin is still running on the workspace. */
  | { kind: "busy"; name: string; commandId: string | null }
  | { kind: "upload-failed"; transient: boolean; error: { code: string; message: string } }
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
 * the manifest's name → pack → put to the staging bucket → presign (300 s) → one SSM program →
 * record `installing` with the command id → wait up to `INSTALL_SYNC_WAIT_SECONDS`: finished →
 * `installed` / `command-failed` (recorded `failed`), still running → `installing` (the sweep's
 * installs pass calls {@link finishInstall}). Nothing is recorded unless the command was sent.
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
  });
  if (staged.kind === "failed") return { kind: "stage-failed", failure: staged };
  const plugin = staged.plugin;
  try {
    const name = plugin.manifest.name;
    if (!(await isPluginAllowed(deps.db, name))) return { kind: "not-allowed", name };
    const key: PluginKey = { workspaceId: workspace.id, name };
    const existing = await getWorkspacePlugin(deps.db, key);
    if (existing?.state === "installing" && (await finishInstall(deps, key)) === "pending") {
      return { kind: "busy", name, commandId: existing.commandId };
    }

    const packed = await packPlugin(plugin);
    const objectKey = stagedArchiveKey(name, packed.sha256);
    const put = await putStagedObject(deps, objectKey, packed.archive, "application/gzip");
    if (put.kind === "failed") {
      return { kind: "upload-failed", transient: put.transient, error: put.error };
    }
    const url = await presignGet(deps, objectKey, PRESIGN_SECONDS);

    const script = installProgram({
      name,
      url,
      archiveSha256: packed.sha256,
      skills: plugin.manifest.skills,
      txn: randomBytes(8).toString("hex"),
    });
    const sent = await sendToTarget(deps, target.instanceId, script, {
      timeoutSeconds: INSTALL_COMMAND_TIMEOUT_SECONDS,
      comment: `wcp: install plugin ${name}`,
    });
    if (sent.kind !== "sent") return sent;
    await recordInstalling(deps.db, {
      ...key,
      version: plugin.manifest.version,
      source: source.canonical,
      digest: plugin.digest,
      commandId: sent.commandId,
    });
    const deadline = Date.now() + deps.config.installSyncWaitSeconds * 1000;
    const result = await waitForCommand(deps, sent.commandId, target.instanceId, deadline);
    if (result === null) return { kind: "installing", name, commandId: sent.commandId };
    const error = result.ok ? null : commandFailureText(result);
    const record = await recordInstallResult(deps.db, { ...key, commandId: sent.commandId, error });
    if (error !== null) return { kind: "command-failed", name, message: error, result };
    // Null only when a newer attempt took the row over meanwhile; ours did install.
    return {
      kind: "installed",
      record: record ?? (await getWorkspacePlugin(deps.db, key)) ?? missingRow(key),
    };
  } finally {
    await plugin.cleanup();
  }
}

function missingRow(key: PluginKey): never {
  throw new Error(`plugin record ${key.workspaceId}/${key.name} vanished during install`);
}

/** Content-addressed: the same archive always lands on the same key. */
export const stagedArchiveKey = (name: string, archiveSha256: string): string =>
  `plugins/${name}/${archiveSha256}.tar.gz`;

/**
 * What {@link finishInstall} did: `installed` / `failed` (recorded), `pending` (still running,
 * or SSM could not be read this time — try again later), `skipped` (the row is gone or no longer
 * `installing`).
 */
export type FinishOutcome = "installed" | "failed" | "pending" | "skipped";

/**
 * Finishes an `installing` row from its stored command id — the sweep's installs pass, and an
 * install request that finds an earlier attempt of the same plugin. Safe to run twice: every
 * write is conditional on the row still being `installing` with the same command id.
 *
 * - the command finished → `installed`, or `failed` with the command's (truncated) error;
 * - still running → `pending`, unless the row has waited longer than the command's timeout plus
 *   a margin: then the command no longer exists or ran elsewhere → `failed`;
 * - the workspace is gone, removed, or has no instance → `failed` (the instance is gone);
 * - a transient SSM error → `pending`; any other SSM error (the command or instance unknown to
 *   SSM) → `failed`.
 */
export async function finishInstall(deps: Deps, key: PluginKey): Promise<FinishOutcome> {
  const row = await getWorkspacePlugin(deps.db, key);
  // Every `installing` row is written with its command id; a row without one is not ours.
  if (row?.state !== "installing" || row.commandId === null) return "skipped";
  const commandId = row.commandId;
  const fail = async (error: string): Promise<FinishOutcome> => {
    const done = await recordInstallResult(deps.db, { ...key, commandId, error });
    return done ? "failed" : "skipped";
  };
  const workspace = await getWorkspace(deps.db, key.workspaceId);
  if (
    !workspace ||
    workspace.instanceId === null ||
    workspace.status === "removing" ||
    workspace.status === "removed"
  ) {
    return fail("The workspace's instance is gone; the install did not finish.");
  }
  let result: CommandResult | null;
  try {
    result = await readCommand(deps, commandId, workspace.instanceId);
  } catch (err) {
    if (isTransientAwsError(err)) return "pending";
    const e = describeAwsError(err);
    return fail(`SSM does not know the install command (${e.code}).`);
  }
  if (result === null) {
    const waited = deps.clock.now().getTime() - row.updatedAt.getTime();
    if (waited <= GIVE_UP_AFTER_MS) return "pending";
    return fail(`The install command did not finish within ${Math.round(waited / 1000)} s.`);
  }
  const error = result.ok ? null : commandFailureText(result);
  const done = await recordInstallResult(deps.db, { ...key, commandId, error });
  if (!done) return "skipped";
  return error === null ? "installed" : "failed";
}
