import { createHash, randomUUID } from "node:crypto";
import {
  copyFile,
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { ChecksumAlgorithm } from "./checksums.js";
import { CloudError, type WireResponse } from "./errors.js";
import { KeyedLock } from "./keylock.js";
import { maxPutObjectBytes, receiveObject } from "./s3upload.js";
import { type Authenticated, authenticate, type PayloadHash } from "./sigv4.js";
import { el, leaf } from "./xml.js";

/** The S3 REST API of the local cloud, path style only: `/<bucket>/<key>`. */

/** "The name for a key is a sequence of Unicode characters whose UTF-8 encoding is at most 1,024 bytes long" (object-keys.html). */
const maxKeyBytes = 1024;
/**
 * Bodies of calls other than PutObject (CreateBucket's configuration, or none at all) are read
 * whole; S3 answers a request body that is too big with `MaxMessageLengthExceeded`
 * (AmazonS3/latest/API/ErrorResponses.html). The bound itself is local.
 */
const maxSmallBodyBytes = 1024 * 1024;

export interface S3Request {
  method: string;
  /** Decoded bucket and key; key "" for a bucket-level request. */
  bucket: string;
  key: string;
  /** The path and the query string as sent (still percent-encoded), which the signature covers. */
  rawPath: string;
  rawQuery: string;
  headers: IncomingHttpHeaders;
  /** The request body, unread: the store reads it as it needs (a PutObject streams to disk). */
  body: Readable;
}

export type S3Action =
  | "PutObject"
  | "GetObject"
  | "HeadObject"
  | "DeleteObject"
  | "CreateBucket"
  | "HeadBucket"
  | "ListBuckets"
  | "ServiceMethodNotAllowed"
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

export interface ObjectStoreOptions {
  /** `<cloud dir>/s3`: one directory per bucket. */
  root: string;
  /** Access key id → secret access key. */
  credentials: Record<string, string>;
  /** Buckets created at start, as if by CreateBucket. */
  buckets: string[];
}

/** The local account's canonical user ID: the shape S3 gives one (64 hex digits). */
const OWNER_ID = createHash("sha256").update("localcloud").digest("hex");

/** Split `/bucket/some/key` (as sent, percent-encoded) into its decoded parts. */
export function parseS3Path(pathname: string): { bucket: string; key: string } {
  const rest = pathname.replace(/^\/+/, "");
  const slash = rest.indexOf("/");
  const bucket = decodeURIComponent(slash < 0 ? rest : rest.slice(0, slash));
  const key = slash < 0 ? "" : decodeURIComponent(rest.slice(slash + 1));
  return { bucket, key };
}

export function s3Action(
  method: string,
  bucket: string,
  key: string,
  headers: IncomingHttpHeaders,
): S3Action {
  // The service root names no bucket: GET lists the caller's buckets (`aws s3 ls`,
  // AmazonS3/latest/API/API_ListBuckets.html); no other method is served there.
  if (bucket === "") return method === "GET" ? "ListBuckets" : "ServiceMethodNotAllowed";
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

/**
 * Objects on disk: `<root>/<bucket>/<sha256(key)>.json` holds the metadata and names the data
 * file `<uuid>.bin`, so replacing an object is one rename of the metadata: a reader sees the old
 * object or the new one, whole. An upload streams into `<uuid>.part` and becomes visible only
 * then. A bucket is its directory, made by CreateBucket or listed at start; every request is
 * signature-checked first (sigv4.ts).
 */
export class ObjectStore {
  readonly #root: string;
  readonly #keys: ReadonlyMap<string, string>;
  readonly #buckets: string[];
  /** Per object: publishing a new version and opening the current one never interleave. */
  readonly #locks = new KeyedLock();

  constructor(opts: ObjectStoreOptions) {
    this.#root = opts.root;
    this.#keys = new Map(Object.entries(opts.credentials));
    for (const bucket of opts.buckets) validateBucket(bucket);
    this.#buckets = opts.buckets;
  }

  /**
   * Make the listed buckets, and clear what an interrupted run left behind: unfinished uploads,
   * metadata temp files, data files no metadata names. Run once, before serving.
   */
  async open(): Promise<void> {
    await mkdir(this.#root, { recursive: true });
    for (const bucket of this.#buckets) await mkdir(join(this.#root, bucket), { recursive: true });
    for (const entry of await readdir(this.#root, { withFileTypes: true })) {
      if (entry.isDirectory()) await this.#sweep(join(this.#root, entry.name));
    }
  }

  async #sweep(dir: string): Promise<void> {
    const names = await readdir(dir);
    const referenced = new Set<string>();
    // A metadata file that cannot be read may name any data file: then no data file is swept.
    let allRead = true;
    for (const name of names.filter((n) => n.endsWith(".json"))) {
      try {
        referenced.add(
          (JSON.parse(await readFile(join(dir, name), "utf8")) as ObjectMeta).dataFile,
        );
      } catch {
        allRead = false;
      }
    }
    for (const name of names) {
      const stale =
        name.endsWith(".part") ||
        name.endsWith(".tmp") ||
        (allRead && name.endsWith(".bin") && !referenced.has(name));
      if (stale) await rm(join(dir, name), { force: true });
    }
  }

  /**
   * Answer one S3 call. Whatever the outcome, the request body is read to its end (up to the
   * PutObject limit) so the connection can carry the next request; past the limit it is left
   * unread and the server closes the connection.
   */
  async handle(action: S3Action, req: S3Request): Promise<WireResponse> {
    try {
      return await this.#dispatch(action, req);
    } finally {
      await discard(req.body, req.headers);
    }
  }

  async #dispatch(action: S3Action, req: S3Request): Promise<WireResponse> {
    if (action === "ListBuckets" || action === "ServiceMethodNotAllowed") {
      const auth = authenticate(req, this.#keys);
      await readSmallBody(req.body, auth.payload);
      if (action === "ListBuckets") return this.#listBuckets();
      // S3's words for a method a resource does not take (AmazonS3/latest/API/ErrorResponses.html,
      // MethodNotAllowed, 405), with the method and the kind of resource it was sent to.
      throw new CloudError(
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
        405,
        { Method: req.method, ResourceType: "SERVICE" },
      );
    }
    validateBucket(req.bucket);
    const auth = authenticate(req, this.#keys);
    if (Buffer.byteLength(req.key) > maxKeyBytes) {
      throw new CloudError("KeyTooLongError", "Your key is too long", 400);
    }
    if (action === "PutObject") {
      await this.#requireBucket(req.bucket);
      return this.#put(req, auth);
    }
    await readSmallBody(req.body, auth.payload);
    switch (action) {
      case "CreateBucket":
        return this.#createBucket(req.bucket);
      case "HeadBucket":
        await this.#requireBucket(req.bucket);
        return { status: 200, headers: { "x-amz-bucket-region": "us-east-1" }, body: "" };
      case "GetObject":
        await this.#requireBucket(req.bucket);
        return this.#get(req, true);
      case "HeadObject":
        await this.#requireBucket(req.bucket);
        return this.#get(req, false);
      case "DeleteObject":
        await this.#requireBucket(req.bucket);
        return this.#delete(req);
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

  /**
   * ListBuckets (AmazonS3/latest/API/API_ListBuckets.html): every bucket, by name, with its
   * creation date and region, and the owner's canonical user ID (a 64-hex-digit id; the
   * `DisplayName` AWS no longer returns is left out).
   */
  async #listBuckets(): Promise<WireResponse> {
    const buckets: string[] = [];
    const entries = await readdir(this.#root, { withFileTypes: true });
    for (const entry of entries
      .filter((e) => e.isDirectory())
      .sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const st = await stat(join(this.#root, entry.name));
      // Not every file system records a birth time; the directory's first change stands in.
      const created = st.birthtimeMs > 0 ? st.birthtime : st.mtime;
      buckets.push(
        el(
          "Bucket",
          leaf("Name", entry.name),
          leaf("CreationDate", created.toISOString()),
          leaf("BucketRegion", "us-east-1"),
        ),
      );
    }
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${el(
      "Owner",
      leaf("ID", OWNER_ID),
    )}${el("Buckets", ...buckets)}</ListAllMyBucketsResult>`;
    return { status: 200, headers: { "content-type": "application/xml" }, body };
  }

  async #createBucket(bucket: string): Promise<WireResponse> {
    const dir = join(this.#root, bucket);
    try {
      await mkdir(dir);
    } catch (err) {
      if (!(isCode(err, "EEXIST") && (await stat(dir)).isDirectory())) throw err;
      // Re-creating a bucket you own answers 200 in us-east-1, the region this endpoint reports
      // (BucketAlreadyOwnedByYou elsewhere; AmazonS3/latest/API/API_CreateBucket.html).
    }
    return { status: 200, headers: { location: `/${bucket}` }, body: "" };
  }

  async #requireBucket(bucket: string): Promise<void> {
    try {
      if ((await stat(join(this.#root, bucket))).isDirectory()) return;
    } catch (err) {
      if (!isCode(err, "ENOENT")) throw err;
    }
    throw new CloudError("NoSuchBucket", "The specified bucket does not exist", 404, {
      BucketName: bucket,
    });
  }

  #metaPath(bucket: string, key: string): string {
    return join(this.#root, bucket, `${createHash("sha256").update(key).digest("hex")}.json`);
  }

  async #readMeta(bucket: string, key: string): Promise<ObjectMeta | undefined> {
    try {
      return JSON.parse(await readFile(this.#metaPath(bucket, key), "utf8")) as ObjectMeta;
    } catch (err) {
      if (isCode(err, "ENOENT")) return undefined;
      throw err;
    }
  }

  /**
   * Stores a local file as an object of an existing bucket: how the local cloud's instances
   * upload a command's output (the SSM agent's S3 upload with the instance's own credentials,
   * which the local cloud does not model). Throws NoSuchBucket as S3 would answer the agent.
   */
  async putFile(bucket: string, key: string, file: string, contentType: string): Promise<void> {
    validateBucket(bucket);
    await this.#requireBucket(bucket);
    const part = join(this.#root, bucket, `${randomUUID()}.part`);
    await copyFile(file, part);
    const data = await readFile(part);
    await this.#publish(bucket, key, part, {
      size: data.byteLength,
      etag: `"${createHash("md5").update(data).digest("hex")}"`,
      contentType,
      lastModified: Date.now(),
      metadata: {},
      checksums: {},
    });
  }

  async #put(req: S3Request, auth: Authenticated): Promise<WireResponse> {
    const dir = join(this.#root, req.bucket);
    const checked = auth.via === "query" ? withQueryChecksums(req) : req.headers;
    const received = await receiveObject(req.body, checked, auth.payload, dir);
    const meta: Omit<ObjectMeta, "key" | "dataFile"> = {
      size: received.size,
      etag: `"${received.md5.toString("hex")}"`,
      // S3 records binary/octet-stream when the upload names no type.
      contentType: header(req.headers, "content-type") ?? "binary/octet-stream",
      lastModified: Date.now(),
      metadata: userMetadata(req.headers),
      checksums: received.checksums,
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

    await this.#publish(req.bucket, req.key, received.file, meta);
    const headers: Record<string, string> = { etag: meta.etag };
    for (const [algorithm, value] of Object.entries(meta.checksums)) {
      headers[`x-amz-checksum-${algorithm}`] = value;
      headers["x-amz-checksum-type"] = "FULL_OBJECT";
    }
    return { status: 200, headers, body: "" };
  }

  /** Makes `file` (in the bucket's directory) the object's new version, whole or not at all. */
  async #publish(
    bucket: string,
    key: string,
    file: string,
    facts: Omit<ObjectMeta, "key" | "dataFile">,
  ): Promise<void> {
    const dir = join(this.#root, bucket);
    const meta: ObjectMeta = { ...facts, key, dataFile: `${randomUUID()}.bin` };
    const metaTmp = join(dir, `${randomUUID()}.tmp`);
    let previous: ObjectMeta | undefined;
    try {
      await rename(file, join(dir, meta.dataFile));
      await writeFile(metaTmp, JSON.stringify(meta));
      // Publishing is one rename; the lock makes "which version did this one replace" exact, so
      // every replaced data file is removed by exactly the writer that replaced it.
      previous = await this.#locks.run(`${bucket}/${key}`, async () => {
        const current = await this.#readMeta(bucket, key);
        await rename(metaTmp, this.#metaPath(bucket, key));
        return current;
      });
    } catch (err) {
      await rm(file, { force: true });
      await rm(join(dir, meta.dataFile), { force: true });
      await rm(metaTmp, { force: true });
      throw err;
    }
    // Readers that opened the old data file keep reading it: an open file outlives its name.
    if (previous) await rm(join(dir, previous.dataFile), { force: true });
  }

  async #get(req: S3Request, withBody: boolean): Promise<WireResponse> {
    // Under the lock, so the version read is the version opened: no writer removes its data
    // file in between, and the open handle keeps it readable after.
    const found = await this.#locks.run(lockKey(req), async () => {
      const meta = await this.#readMeta(req.bucket, req.key);
      if (!meta) return undefined;
      const rangeHeader = header(req.headers, "range");
      const range = rangeHeader === undefined ? undefined : parseRange(rangeHeader, meta.size);
      const file = withBody
        ? await open(join(this.#root, req.bucket, meta.dataFile), "r")
        : undefined;
      return { meta, range, file };
    });
    if (!found) {
      throw new CloudError("NoSuchKey", "The specified key does not exist.", 404, {
        Key: req.key,
      });
    }
    return objectResponse(found.meta, found.range, found.file, req);
  }

  async #delete(req: S3Request): Promise<WireResponse> {
    const removed = await this.#locks.run(lockKey(req), async () => {
      const meta = await this.#readMeta(req.bucket, req.key);
      if (meta) await rm(this.#metaPath(req.bucket, req.key), { force: true });
      return meta;
    });
    if (removed) await rm(join(this.#root, req.bucket, removed.dataFile), { force: true });
    // Deleting a key that does not exist succeeds too.
    return { status: 204, headers: {}, body: "" };
  }
}

const lockKey = (req: S3Request) => `${req.bucket}/${req.key}`;

/**
 * A presigned PUT carries its checksum in the signed query, and S3 holds the upload to it: a URL
 * the JS SDK presigned with its default checksum names the CRC-32 of an empty body, so any real
 * upload through it fails (aws/aws-sdk-js-v3#6994; not in the AWS documentation).
 */
function withQueryChecksums(req: S3Request): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = { ...req.headers };
  for (const [name, value] of new URLSearchParams(req.rawQuery)) {
    const lower = name.toLowerCase();
    if (lower.startsWith("x-amz-checksum-") || lower === "x-amz-sdk-checksum-algorithm") {
      headers[lower] = value;
    }
  }
  return headers;
}

/**
 * Query parameters that override response headers on a signed GET or HEAD
 * (AmazonS3/latest/API/API_GetObject.html, "Overriding response header values").
 */
const responseOverrides: [string, string][] = [
  ["response-cache-control", "cache-control"],
  ["response-content-disposition", "content-disposition"],
  ["response-content-encoding", "content-encoding"],
  ["response-content-language", "content-language"],
  ["response-content-type", "content-type"],
  ["response-expires", "expires"],
];

function objectResponse(
  meta: ObjectMeta,
  range: { start: number; end: number } | undefined,
  file: FileHandle | undefined,
  req: S3Request,
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
  const query = new URLSearchParams(req.rawQuery);
  for (const [param, name] of responseOverrides) {
    const value = query.get(param);
    if (value !== null) headers[name] = value;
  }
  if (range) {
    headers["content-range"] = `bytes ${range.start}-${range.end}/${meta.size}`;
    headers["content-length"] = String(range.end - range.start + 1);
    const body = file ? file.createReadStream({ start: range.start, end: range.end }) : "";
    return { status: 206, headers, body };
  }
  // The SDK asks with x-amz-checksum-mode: ENABLED and then verifies what we send.
  if (header(req.headers, "x-amz-checksum-mode")?.toUpperCase() === "ENABLED") {
    for (const [algorithm, value] of Object.entries(meta.checksums)) {
      headers[`x-amz-checksum-${algorithm}`] = value;
      headers["x-amz-checksum-type"] = "FULL_OBJECT";
    }
  }
  headers["content-length"] = String(meta.size);
  return { status: 200, headers, body: file ? file.createReadStream() : "" };
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

/** Read a small body whole and hold it to the signed payload hash, if one was signed. */
async function readSmallBody(body: Readable, payload: PayloadHash): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const piece of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += piece.byteLength;
    if (size > maxSmallBodyBytes) {
      throw new CloudError("MaxMessageLengthExceeded", "Your request was too big.");
    }
    parts.push(piece);
  }
  const data = Buffer.concat(parts);
  if (payload.kind === "sha256") {
    const computed = createHash("sha256").update(data).digest("hex");
    if (computed !== payload.hex) {
      throw new CloudError(
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
        400,
        { ClientComputedContentSHA256: payload.hex, S3ComputedContentSHA256: computed },
      );
    }
  }
  return data;
}

/**
 * Read what is left of a body and drop it. A body declared (or found) larger than any S3 call
 * accepts is left alone: reading gigabytes only to refuse them helps nobody.
 */
async function discard(body: Readable, headers: IncomingHttpHeaders): Promise<void> {
  if (body.readableEnded) return;
  const limit = maxPutObjectBytes;
  if (Number(header(headers, "content-length") ?? "0") > limit) return;
  let seen = 0;
  try {
    for await (const piece of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      seen += piece.byteLength;
      if (seen > limit) return;
    }
  } catch {
    // The client is gone; nothing to keep usable.
  }
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

function isCode(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && "code" in err && err.code === code;
}
