import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { callOptions } from "../deadline.js";
import type { Deps } from "../deps.js";
import { awsErrorCode, describeAwsError, isTransientAwsError } from "./errors.js";

/**
 * The staging bucket (`STAGING_BUCKET`): how plugin archives reach instances and external
 * agents. An instance fetches a presigned GET with plain `curl`, so it needs no S3 permission of
 * its own, and no payload ever travels inside an SSM document (64 KB limit). Archives are kept
 * (content-addressed, one object per plugin version): a restart re-applies plugins from them.
 * Commands' whole output lands under {@link COMMAND_OUTPUT_PREFIX}, uploaded by the instances
 * themselves, and expires with that prefix's lifecycle rule (infra/storage.ts).
 */

/** Where instances upload commands' output: the only prefix their role may write, and expire. */
export const COMMAND_OUTPUT_PREFIX = "commands/";

export type PutOutcome =
  | { kind: "stored" }
  | { kind: "failed"; transient: boolean; error: { code: string; message: string } };

/**
 * Stores `body` under `key`. Keys are content-addressed by the callers, so storing the same
 * object twice is harmless and concurrent writers write identical bytes.
 */
export async function putStagedObject(
  deps: Pick<Deps, "aws" | "config" | "deadline">,
  key: string,
  body: Uint8Array,
  contentType: string,
): Promise<PutOutcome> {
  try {
    await deps.aws.s3.send(
      new PutObjectCommand({
        Bucket: deps.config.stagingBucket,
        Key: key,
        Body: body,
        ContentType: contentType,
        ContentLength: body.byteLength,
      }),
      callOptions(deps),
    );
    return { kind: "stored" };
  } catch (err) {
    return { kind: "failed", transient: isTransientAwsError(err), error: describeAwsError(err) };
  }
}

// Presigned URLs live 1 s to 7 days (AmazonS3/latest/API/sigv4-query-string-auth.html).
const MAX_PRESIGN_SECONDS = 604_800;

/**
 * A presigned GET for `key`, valid `expiresInSeconds` (clamped to S3's 1 s – 7 days). Signing is
 * local; no request is made. `downloadName` sets the `Content-Disposition` S3 answers with.
 */
export async function presignGet(
  deps: Pick<Deps, "aws" | "config" | "deadline">,
  key: string,
  expiresInSeconds: number,
  downloadName?: string,
): Promise<string> {
  const expiresIn = Math.min(MAX_PRESIGN_SECONDS, Math.max(1, Math.floor(expiresInSeconds)));
  return getSignedUrl(
    deps.aws.s3,
    new GetObjectCommand({
      Bucket: deps.config.stagingBucket,
      Key: key,
      ...(downloadName !== undefined && {
        ResponseContentDisposition: `attachment; filename="${downloadName}"`,
      }),
    }),
    { expiresIn },
  );
}

export type ReadOutcome =
  | { kind: "found"; head: Uint8Array; size: number }
  | { kind: "missing" }
  | { kind: "failed"; transient: boolean; error: { code: string; message: string } };

/**
 * The first `maxBytes` bytes of `key` and the object's whole size, in one ranged GET (no
 * HeadObject: its permission is s3:GetObject anyway, and it would be a second call).
 */
export async function readStagedObject(
  deps: Pick<Deps, "aws" | "config" | "deadline">,
  key: string,
  maxBytes: number,
): Promise<ReadOutcome> {
  try {
    const out = await deps.aws.s3.send(
      new GetObjectCommand({
        Bucket: deps.config.stagingBucket,
        Key: key,
        Range: `bytes=0-${Math.max(0, maxBytes - 1)}`,
      }),
      callOptions(deps),
    );
    const head = out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
    // "bytes 0-99/1234": the total after the slash.
    const total = Number(out.ContentRange?.split("/")[1] ?? head.byteLength);
    return { kind: "found", head, size: Number.isFinite(total) ? total : head.byteLength };
  } catch (err) {
    const code = awsErrorCode(err);
    if (code === "NoSuchKey") return { kind: "missing" };
    // A range of an empty object is not satisfiable (AmazonS3/latest/API/API_GetObject.html).
    if (code === "InvalidRange") return { kind: "found", head: new Uint8Array(), size: 0 };
    return { kind: "failed", transient: isTransientAwsError(err), error: describeAwsError(err) };
  }
}
