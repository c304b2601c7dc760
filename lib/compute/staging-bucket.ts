import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { callOptions } from "../deadline.js";
import type { Deps } from "../deps.js";
import { describeAwsError, isTransientAwsError } from "./errors.js";

/**
 * The staging bucket (`STAGING_BUCKET`): how plugin archives reach instances and external
 * agents. An instance fetches a presigned GET with plain `curl`, so it needs no S3 permission of
 * its own, and no payload ever travels inside an SSM document (64 KB limit). Archives are kept
 * (content-addressed, one object per plugin version): a restart re-applies plugins from them.
 */

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
