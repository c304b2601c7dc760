import { createHash, randomUUID } from "node:crypto";
import { type FileHandle, open, rm } from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { AwsChunkedDecoder } from "./awschunked.js";
import {
  type ChecksumAlgorithm,
  checksumAlgorithms,
  type RunningChecksum,
  runningChecksum,
} from "./checksums.js";
import { CloudError } from "./errors.js";
import type { PayloadHash } from "./sigv4.js";

/**
 * "You can upload a single object up to 5 GB in size" with one PUT
 * (docs.aws.amazon.com/AmazonS3/latest/userguide/upload-objects.html). The GB is 2^30 bytes: the
 * multipart limits table of …/userguide/qfacts.html gives the same bound as 5 GiB.
 */
export const maxPutObjectBytes = 5 * 1024 ** 3;

/** An upload on disk, checked, not yet visible: the caller publishes it (or removes it). */
export interface ReceivedObject {
  /** Absolute path of the temp file in the bucket dir (`<uuid>.part`). */
  file: string;
  size: number;
  md5: Buffer;
  /** The checksums the upload asked for, base64, as S3 stores and returns them. */
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
}

/**
 * Stream a PutObject body to a temp file in `dir` while computing its MD5 (the ETag), the
 * checksums it names, and — for a signed payload — its SHA-256, so the body is never held in
 * memory. An `aws-chunked` body is decoded on the way. Checked like S3 checks them
 * (AmazonS3/latest/API/API_PutObject.html, …/API/ErrorResponses.html): a missing length
 * (`MissingContentLength`), over 5 GiB (`EntityTooLarge`), a bad `Content-MD5` (`InvalidDigest`),
 * fewer bytes than declared (`IncompleteBody`), a checksum or MD5 that does not match
 * (`BadDigest`), a payload hash that does not match (`XAmzContentSHA256Mismatch`), a declared
 * trailer that never came (`MalformedTrailerError`). On any failure the temp file is gone.
 */
export async function receiveObject(
  body: Readable,
  headers: IncomingHttpHeaders,
  payload: PayloadHash,
  dir: string,
): Promise<ReceivedObject> {
  const chunked = payload.kind === "streaming-unsigned-trailer";
  const declared = declaredLength(headers, chunked);
  const contentMd5 = expectedMd5(headers);
  const wanted = wantedChecksums(headers, chunked);

  const md5 = createHash("md5");
  const bodySha = payload.kind === "sha256" ? createHash("sha256") : undefined;
  const running = new Map<ChecksumAlgorithm, RunningChecksum>(
    wanted.algorithms.map((a) => [a, runningChecksum(a)]),
  );
  const decoder = chunked ? new AwsChunkedDecoder() : undefined;
  // aws-chunked framing costs a size line per chunk; anything past twice the object is not framing.
  const maxWireBytes = chunked ? 2 * declared + 64 * 1024 : declared;

  const file = join(dir, `${randomUUID()}.part`);
  const handle = await open(file, "wx");
  let kept = false;
  try {
    let wire = 0;
    let size = 0;
    const pieces = body.iterator({ destroyOnReturn: false }) as AsyncIterator<Buffer>;
    try {
      for (;;) {
        let next: IteratorResult<Buffer>;
        try {
          next = await pieces.next();
        } catch {
          // The client went away mid-body (ECONNRESET, "aborted"): nobody is left to answer.
          throw new CloudError("IncompleteBody", "The request body terminated unexpectedly", 400);
        }
        if (next.done) break;
        const piece = next.value;
        wire += piece.byteLength;
        if (wire > maxWireBytes) throw lengthMismatch();
        bodySha?.update(piece);
        for (const data of decoder ? decoder.push(piece) : [piece]) {
          size += data.byteLength;
          if (size > declared) throw lengthMismatch();
          md5.update(data);
          for (const r of running.values()) r.update(data);
          await writeAll(handle, data);
        }
      }
    } finally {
      // Detach without destroying the request: the answer still has to go out on its socket.
      await pieces.return?.();
    }
    const trailers = decoder ? decoder.end() : new Map<string, string>();
    if (size !== declared) throw lengthMismatch();
    if (bodySha && payload.kind === "sha256") {
      const computed = bodySha.digest("hex");
      if (computed !== payload.hex) {
        throw new CloudError(
          "XAmzContentSHA256Mismatch",
          "The provided 'x-amz-content-sha256' header does not match what was computed.",
          400,
          { ClientComputedContentSHA256: payload.hex, S3ComputedContentSHA256: computed },
        );
      }
    }
    for (const name of wanted.trailers) {
      if (!trailers.has(name)) {
        throw new CloudError(
          "MalformedTrailerError",
          "The request contained trailing data that was not well-formed or did not conform to our published schema.",
        );
      }
    }
    const checksums: ReceivedObject["checksums"] = {};
    for (const [algorithm, r] of running) {
      const actual = r.digest();
      const name = `x-amz-checksum-${algorithm}`;
      const provided = trailers.get(name) ?? header(headers, name);
      if (provided !== undefined && provided !== actual) {
        throw new CloudError(
          "BadDigest",
          `The ${algorithm.toUpperCase()} you specified did not match the calculated checksum.`,
        );
      }
      checksums[algorithm] = actual;
    }
    const digest = md5.digest();
    if (contentMd5 !== undefined && !contentMd5.equals(digest)) {
      throw new CloudError(
        "BadDigest",
        "The Content-MD5 you specified did not match what we received.",
      );
    }
    kept = true;
    return { file, size, md5: digest, checksums };
  } finally {
    await handle.close();
    if (!kept) await rm(file, { force: true });
  }
}

function lengthMismatch(): CloudError {
  return new CloudError(
    "IncompleteBody",
    "You did not provide the number of bytes specified by the Content-Length HTTP header",
  );
}

/** The object's length as declared: Content-Length, or for aws-chunked x-amz-decoded-content-length. */
function declaredLength(headers: IncomingHttpHeaders, chunked: boolean): number {
  // PutObject needs the length up front; a chunked upload declares the decoded one
  // (AmazonS3/latest/API/sigv4-streaming.html, x-amz-decoded-content-length).
  const raw = header(headers, chunked ? "x-amz-decoded-content-length" : "content-length");
  if (raw === undefined || !/^\d+$/.test(raw)) {
    throw new CloudError(
      "MissingContentLength",
      "You must provide the Content-Length HTTP header.",
      411,
    );
  }
  const length = Number(raw);
  if (length > maxPutObjectBytes) {
    throw new CloudError(
      "EntityTooLarge",
      "Your proposed upload exceeds the maximum allowed size",
      400,
      { ProposedSize: raw, MaxSizeAllowed: String(maxPutObjectBytes) },
    );
  }
  return length;
}

function expectedMd5(headers: IncomingHttpHeaders): Buffer | undefined {
  const value = header(headers, "content-md5");
  if (value === undefined) return undefined;
  const bytes = Buffer.from(value, "base64");
  if (bytes.byteLength !== 16 || bytes.toString("base64") !== value) {
    throw new CloudError("InvalidDigest", "The Content-MD5 you specified is not valid.");
  }
  return bytes;
}

/**
 * The checksums to compute: the one sent as a header, the one a trailer will carry (named in
 * `x-amz-trailer`), the one `x-amz-sdk-checksum-algorithm` names. S3 takes one checksum per
 * upload (AmazonS3/latest/userguide/checking-object-integrity.html).
 */
function wantedChecksums(
  headers: IncomingHttpHeaders,
  chunked: boolean,
): { algorithms: ChecksumAlgorithm[]; trailers: string[] } {
  const algorithms = new Set<ChecksumAlgorithm>();
  for (const algorithm of checksumAlgorithms) {
    if (header(headers, `x-amz-checksum-${algorithm}`) !== undefined) algorithms.add(algorithm);
  }
  const trailers = (header(headers, "x-amz-trailer") ?? "")
    .split(",")
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== "");
  for (const name of trailers) {
    const algorithm = checksumAlgorithms.find((a) => name === `x-amz-checksum-${a}`);
    if (!chunked || algorithm === undefined) {
      throw new CloudError(
        "InvalidRequest",
        `The value specified in the x-amz-trailer header is not supported: ${name}`,
      );
    }
    algorithms.add(algorithm);
  }
  const named = header(headers, "x-amz-sdk-checksum-algorithm")?.toLowerCase();
  if (named !== undefined) {
    const algorithm = checksumAlgorithms.find((a) => a === named);
    if (algorithm === undefined) {
      throw new CloudError(
        "InvalidRequest",
        "Value for x-amz-sdk-checksum-algorithm header is invalid.",
      );
    }
    algorithms.add(algorithm);
  }
  if (algorithms.size > 1) {
    throw new CloudError(
      "InvalidRequest",
      "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
    );
  }
  return { algorithms: [...algorithms], trailers };
}

async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.byteLength) {
    const { bytesWritten } = await handle.write(data, offset, data.byteLength - offset);
    offset += bytesWritten;
  }
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(",") : v;
}
