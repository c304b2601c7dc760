import { commandOutputKey, readInvocation } from "../compute/commands.js";
import { describeAwsError, isTransientAwsError } from "../compute/errors.js";
import { COMMAND_OUTPUT_PREFIX, presignGet, readStagedObject } from "../compute/staging-bucket.js";
import type { Deps } from "../deps.js";
import { unhandled } from "../unhandled.js";
import type { WorkspaceCommandRow } from "./records.js";
import { settleCommand } from "./settle.js";
import { isFinished } from "./status.js";

/**
 * A command's whole stdout or stderr. SSM answers at most 24,000 / 8,000 characters inline; the
 * agent uploads the whole streams to the staging bucket, where they expire with the `commands/`
 * lifecycle rule. Served inline up to `DOWNLOAD_INLINE_MAX_BYTES` (Lambda's response limit),
 * else as a presigned URL.
 */

export type OutputStream = "stdout" | "stderr";

/** The presigned URL's lifetime: long enough to start a download, short enough not to leak. */
export const OUTPUT_PRESIGN_SECONDS = 300;

/** Where a workspace's commands are told to upload their output (SendCommand's Output*). */
export function commandOutputLocation(
  deps: Pick<Deps, "config">,
  workspaceId: string,
): { bucket: string; keyPrefix: string } {
  return { bucket: deps.config.stagingBucket, keyPrefix: `${COMMAND_OUTPUT_PREFIX}${workspaceId}` };
}

export type OutputOutcome =
  | { kind: "inline"; body: Uint8Array }
  | { kind: "redirect"; url: string; size: number }
  /** The output is uploaded when the command ends. */
  | { kind: "not-finished"; row: WorkspaceCommandRow }
  /** The stream was not empty, but the bucket has no copy: expired, or the upload failed. */
  | { kind: "missing" }
  | { kind: "failed"; transient: boolean; error: { code: string; message: string } };

/**
 * The whole of one stream of a finished command. A command that never ran has empty streams.
 * A stream the bucket does not hold is empty when SSM's inline copy is empty too (the agent
 * uploads nothing for an empty stream), else `missing`.
 */
export async function commandOutput(
  deps: Deps,
  record: WorkspaceCommandRow,
  stream: OutputStream,
): Promise<OutputOutcome> {
  let row = record;
  if (!isFinished(row.status)) row = (await settleCommand(deps, row)).row;
  if (!isFinished(row.status)) return { kind: "not-finished", row };
  if (row.ssmCommandId === null) return { kind: "inline", body: new Uint8Array() };
  const { keyPrefix } = commandOutputLocation(deps, row.workspaceId);
  const key = commandOutputKey(keyPrefix, row.ssmCommandId, row.instanceId, stream);
  const inlineMax = deps.config.downloadInlineMaxBytes;
  const read = await readStagedObject(deps, key, inlineMax + 1);
  switch (read.kind) {
    case "found":
      if (read.size <= inlineMax) return { kind: "inline", body: read.head };
      return {
        kind: "redirect",
        url: await presignGet(deps, key, OUTPUT_PRESIGN_SECONDS, `${row.id}.${stream}`),
        size: read.size,
      };
    case "missing": {
      let inline: string | undefined;
      try {
        const result = (await readInvocation(deps, row.ssmCommandId, row.instanceId))?.result;
        inline = stream === "stdout" ? result?.stdout : result?.stderr;
      } catch (err) {
        return {
          kind: "failed",
          transient: isTransientAwsError(err),
          error: describeAwsError(err),
        };
      }
      return inline === "" ? { kind: "inline", body: new Uint8Array() } : { kind: "missing" };
    }
    case "failed":
      return read;
    default:
      return unhandled("read", read);
  }
}
