import { createHash, randomUUID } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { decodeAwsChunked } from "./awschunked.js";
import { type ChecksumAlgorithm, checksum, checksumAlgorithms } from "./checksums.js";
import { CloudError, type WireResponse } from "./errors.js";
import { el, leaf } from "./xml.js";

/** The S3 REST API of the local cloud, path style only: `/<bucket>/<key>`. */

/** Presigned URLs live 1 s to 7 days (AmazonS3/latest/API/sigv4-query-string-auth.html). */
export const maxPresignExpiresSeconds = 604_800;
/** "The name for a key is a sequence of Unicode characters whose UTF-8 encoding is at most 1,024 bytes long" (object-keys.html). */
const maxKeyBytes = 1024;

export interface S3Request {
  method: string;
  /** Decoded bucket and key; key "" for a bucket-level request. */
  bucket: string;
  key: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type S3Action =
  | "PutObject"
  | "GetObject"
  | "HeadObject"
  | "DeleteObject"
  | "CreateBucket"
  | "HeadBucket"
  | "Unsupported";

interface ObjectMeta {
  key: string;
  dataFile: string;
  size: number;
  etag: string;
  contentType: string;
  lastModified: number;
  metadata: Record<string, string>;
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
  cacheControl?: string;
  contentDisposition?: string;
  contentEncoding?: string;
}

/** Split `/bucket/some/key` into its decoded parts. */
export function parseS3Path(pathname: string): { bucket: string; key: string } {
  const rest = pathname.replace(/^\/+/, "");
  const slash = rest.indexOf("/");
  const bucket = decodeURIComponent(slash < 0 ? rest : rest.slice(0, slash));
  const key = slash < 0 ? "" : decodeURIComponent(rest.slice(slash + 1));
  return { bucket, key };
}

export function s3Action(method: string, key: string, headers: IncomingHttpHeaders): S3Action {
  if (key === "") {
    if (method === "PUT") return "CreateBucket";
    if (method === "HEAD") return "HeadBucket";
    return "Unsupported";
  }
  switch (method) {
    case "PUT":
      return headers["x-amz-copy-source"] ? "Unsupported" : "PutObject";
    case "GET":
      return "GetObject";
    case "HEAD":
      return "HeadObject";
    case "DELETE":
      return "DeleteObject";
    default:
      return "Unsupported";
  }
}

/** S3's error document; HEAD responses carry none, as S3 sends none. */
export function s3Error(err: CloudError, requestId: string, method: string): WireResponse {
  const headers = { "content-type": "application/xml" };
  if (method === "HEAD") return { status: err.status, headers, body: "" };
  const extra = Object.entries(err.extra).map(([k, v]) => leaf(k, v));
  return {
    status: err.status,
    headers,
    body: `<?xml version="1.0" encoding="UTF-8"?>\n${el(
      "Error",
      leaf("Code", err.code),
      leaf("Message", err.message),
      ...extra,
      leaf("RequestId", requestId),
      leaf("HostId", Buffer.from(requestId).toString("base64")),
    )}`,
  };
}

/**
 * A response the SDK cannot parse. S3 object calls have blob or header-only outputs, so a bad
 * body would go unnoticed; a broken status line makes the HTTP client itself fail instead.
 */
export const s3MalformedRaw = "HTTP/1.1 200 OK\r\nContent-Length: not-a-number\r\n\r\n";

/** Reject expired or malformed presigned requests; a request without X-Amz-* query auth passes. */
export function checkPresigned(query: URLSearchParams, now = Date.now()): void {
  if (!query.has("X-Amz-Signature") && !query.has("X-Amz-Algorithm")) return;
  const date = query.get("X-Amz-Date") ?? "";
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
  if (!m) {
    throw new CloudError(
      "AuthorizationQueryParametersError",
      "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
    );
  }
  const signedAt = Date.UTC(
    Number(m[1]),
    Number(m[2]) - 1,
    Number(m[3]),
    Number(m[4]),
    Number(m[5]),
    Number(m[6]),
  );
  const expiresRaw = query.get("X-Amz-Expires") ?? "";
  const expires = Number(expiresRaw);
  if (!/^\d+$/.test(expiresRaw)) {
    throw new CloudError("AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative");
  }
  if (expires > maxPresignExpiresSeconds) {
    throw new CloudError(
      "AuthorizationQueryParametersError",
      `X-Amz-Expires must be less than a week (in seconds) that is; ${maxPresignExpiresSeconds}`,
    );
  }
  const expiresAt = signedAt + expires * 1000;
  if (now > expiresAt) {
    throw new CloudError("AccessDenied", "Request has expired", 403, {
      "X-Amz-Expires": expiresRaw,
      Expires: new Date(expiresAt).toISOString(),
      ServerTime: new Date(now).toISOString(),
    });
  }
}

/**
 * Objects on disk: `<root>/<bucket>/<sha256(key)>.json` holds the metadata and names the data
 * file, so replacing an object is one rename of the metadata. Buckets need no CreateBucket:
 * the first PutObject makes the directory, and a missing object in a never-written bucket is
 * NoSuchKey rather than NoSuchBucket, since every bucket name is taken to exist.
 */
export class ObjectStore {
  constructor(private readonly root: string) {}

  async handle(action: S3Action, req: S3Request): Promise<WireResponse> {
    validateBucket(req.bucket);
    if (Buffer.byteLength(req.key) > maxKeyBytes) {
      throw new CloudError("KeyTooLongError", "Your key is too long", 400);
    }
    checkPresigned(req.query);
    switch (action) {
      case "PutObject":
        return this.#put(req);
      case "GetObject":
        return this.#get(req, true);
      case "HeadObject":
        return this.#get(req, false);
      case "DeleteObject":
        return this.#delete(req);
      case "CreateBucket":
        await mkdir(join(this.root, req.bucket), { recursive: true });
        return { status: 200, headers: { location: `/${req.bucket}` }, body: "" };
      case "HeadBucket":
        return { status: 200, headers: { "x-amz-bucket-region": "us-east-1" }, body: "" };
      case "Unsupported":
        throw new CloudError(
          "NotImplemented",
          "A header you provided implies functionality that is not implemented",
          501,
        );
      default: {
        const never: never = action;
        throw new Error(`unknown S3 action ${String(never)}`);
      }
    }
  }

  #metaPath(bucket: string, key: string): string {
    return join(this.root, bucket, `${createHash("sha256").update(key).digest("hex")}.json`);
  }

  async #readMeta(bucket: string, key: string): Promise<ObjectMeta | undefined> {
    try {
      return JSON.parse(await readFile(this.#metaPath(bucket, key), "utf8")) as ObjectMeta;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async #put(req: S3Request): Promise<WireResponse> {
    const { data, trailers } = uploadedBytes(req);
    const provided = providedChecksums(req.headers, trailers);
    const checksums: ObjectMeta["checksums"] = {};
    for (const [algorithm, value] of provided) {
      const actual = checksum(algorithm, data);
      if (actual !== value) {
        throw new CloudError(
          "BadDigest",
          `The ${algorithm.toUpperCase()} you specified did not match the calculated checksum.`,
        );
      }
      checksums[algorithm] = actual;
    }
    const md5 = createHash("md5").update(data).digest();
    const contentMd5 = header(req.headers, "content-md5");
    if (contentMd5 !== undefined && contentMd5 !== md5.toString("base64")) {
      throw new CloudError(
        "BadDigest",
        "The Content-MD5 you specified did not match what we received.",
      );
    }
    const dir = join(this.root, req.bucket);
    await mkdir(dir, { recursive: true });
    const previous = await this.#readMeta(req.bucket, req.key);
    const dataFile = `${randomUUID()}.bin`;
    await writeFile(join(dir, dataFile), data);
    const meta: ObjectMeta = {
      key: req.key,
      dataFile,
      size: data.byteLength,
      etag: `"${md5.toString("hex")}"`,
      // S3 records binary/octet-stream when the upload names no type.
      contentType: header(req.headers, "content-type") ?? "binary/octet-stream",
      lastModified: Date.now(),
      metadata: userMetadata(req.headers),
      checksums,
    };
    const cacheControl = header(req.headers, "cache-control");
    const disposition = header(req.headers, "content-disposition");
    const encoding = (header(req.headers, "content-encoding") ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "" && s !== "aws-chunked")
      .join(",");
    if (cacheControl) meta.cacheControl = cacheControl;
    if (disposition) meta.contentDisposition = disposition;
    if (encoding) meta.contentEncoding = encoding;
    const metaPath = this.#metaPath(req.bucket, req.key);
    await writeFile(`${metaPath}.tmp`, JSON.stringify(meta));
    await rename(`${metaPath}.tmp`, metaPath);
    if (previous) await rm(join(dir, previous.dataFile), { force: true });
    const headers: Record<string, string> = { etag: meta.etag };
    for (const [algorithm, value] of Object.entries(checksums)) {
      headers[`x-amz-checksum-${algorithm}`] = value;
      headers["x-amz-checksum-type"] = "FULL_OBJECT";
    }
    return { status: 200, headers, body: "" };
  }

  async #get(req: S3Request, withBody: boolean): Promise<WireResponse> {
    // A concurrent overwrite may delete the data file between the two reads; read again once.
    for (let attempt = 0; attempt < 2; attempt++) {
      const meta = await this.#readMeta(req.bucket, req.key);
      if (!meta) {
        throw new CloudError("NoSuchKey", "The specified key does not exist.", 404, {
          Key: req.key,
        });
      }
      let data: Buffer;
      try {
        data = withBody
          ? await readFile(join(this.root, req.bucket, meta.dataFile))
          : Buffer.alloc(0);
      } catch (err) {
        if (isNotFound(err) && attempt === 0) continue;
        throw err;
      }
      return objectResponse(meta, data, req, withBody);
    }
    throw new CloudError("NoSuchKey", "The specified key does not exist.", 404, { Key: req.key });
  }

  async #delete(req: S3Request): Promise<WireResponse> {
    const meta = await this.#readMeta(req.bucket, req.key);
    if (meta) {
      await rm(this.#metaPath(req.bucket, req.key), { force: true });
      await rm(join(this.root, req.bucket, meta.dataFile), { force: true });
    }
    // Deleting a key that does not exist succeeds too.
    return { status: 204, headers: {}, body: "" };
  }
}

function objectResponse(
  meta: ObjectMeta,
  data: Buffer,
  req: S3Request,
  withBody: boolean,
): WireResponse {
  const headers: Record<string, string> = {
    "content-type": meta.contentType,
    etag: meta.etag,
    "last-modified": new Date(meta.lastModified).toUTCString(),
    "accept-ranges": "bytes",
  };
  if (meta.cacheControl) headers["cache-control"] = meta.cacheControl;
  if (meta.contentDisposition) headers["content-disposition"] = meta.contentDisposition;
  if (meta.contentEncoding) headers["content-encoding"] = meta.contentEncoding;
  for (const [k, v] of Object.entries(meta.metadata)) headers[`x-amz-meta-${k}`] = v;
  const range = header(req.headers, "range");
  if (range !== undefined) {
    const r = parseRange(range, meta.size);
    headers["content-range"] = `bytes ${r.start}-${r.end}/${meta.size}`;
    headers["content-length"] = String(r.end - r.start + 1);
    return { status: 206, headers, body: withBody ? data.subarray(r.start, r.end + 1) : "" };
  }
  // The SDK asks with x-amz-checksum-mode: ENABLED and then verifies what we send.
  if (header(req.headers, "x-amz-checksum-mode")?.toUpperCase() === "ENABLED") {
    for (const [algorithm, value] of Object.entries(meta.checksums)) {
      headers[`x-amz-checksum-${algorithm}`] = value;
      headers["x-amz-checksum-type"] = "FULL_OBJECT";
    }
  }
  headers["content-length"] = String(meta.size);
  return { status: 200, headers, body: withBody ? data : "" };
}

function parseRange(range: string, size: number): { start: number; end: number } {
  const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
  let start: number;
  let end: number;
  if (m && m[1] !== "" && m[1] !== undefined) {
    start = Number(m[1]);
    end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
  } else if (m?.[2]) {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number.NaN;
    end = Number.NaN;
  }
  if (!(start <= end) || start >= size) {
    throw new CloudError("InvalidRange", "The requested range is not satisfiable", 416, {
      RangeRequested: range,
      ActualObjectSize: String(size),
    });
  }
  return { start, end };
}

function uploadedBytes(req: S3Request): { data: Buffer; trailers: Record<string, string> } {
  const encoding = header(req.headers, "content-encoding") ?? "";
  const sha = header(req.headers, "x-amz-content-sha256") ?? "";
  if (
    !encoding.split(",").some((e) => e.trim() === "aws-chunked") &&
    !sha.startsWith("STREAMING-")
  ) {
    return { data: req.body, trailers: {} };
  }
  const decoded = decodeAwsChunked(req.body);
  const declared = header(req.headers, "x-amz-decoded-content-length");
  if (declared !== undefined && Number(declared) !== decoded.data.byteLength) {
    throw new CloudError(
      "IncompleteBody",
      "You did not provide the number of bytes specified by the Content-Length HTTP header",
    );
  }
  return decoded;
}

function providedChecksums(
  headers: IncomingHttpHeaders,
  trailers: Record<string, string>,
): [ChecksumAlgorithm, string][] {
  const out: [ChecksumAlgorithm, string][] = [];
  for (const algorithm of checksumAlgorithms) {
    const name = `x-amz-checksum-${algorithm}`;
    const value = trailers[name] ?? header(headers, name);
    if (value !== undefined) out.push([algorithm, value]);
  }
  return out;
}

function userMetadata(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith("x-amz-meta-") && typeof v === "string")
      out[k.slice("x-amz-meta-".length)] = v;
  }
  return out;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(",") : v;
}

/** Bucket naming rules (AmazonS3/latest/userguide/bucketnamingrules.html): 3–63 chars, lowercase. */
function validateBucket(bucket: string): void {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes("..")) {
    throw new CloudError("InvalidBucketName", "The specified bucket is not valid.", 400, {
      BucketName: bucket,
    });
  }
}

function isNotFound(err: unknown): boolean {
  return typeof err === "object" && err !== null && "code" in err && err.code === "ENOENT";
}
