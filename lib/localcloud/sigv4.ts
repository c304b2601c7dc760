import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { CloudError } from "./errors.js";

/**
 * Signature Version 4 as S3 checks it, for both ways of signing a request:
 * - query parameters, i.e. presigned URLs (docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html);
 * - the `Authorization` header, as every SDK call signs (…/API/sig-v4-header-based-auth.html).
 * The canonical request, the string to sign and the HMAC chain are the same for both
 * (…/API/sig-v4-authenticating-requests.html); verifying the header form costs nothing more, so
 * the local cloud verifies every S3 request and, like a private bucket, refuses unsigned ones.
 * Chunk-signed uploads (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD…`) are refused as not implemented:
 * neither the JS SDK nor the aws CLI sends them to an http endpoint.
 */

/** Presigned URLs live 1 s to 7 days (AmazonS3/latest/API/sigv4-query-string-auth.html). */
const maxPresignExpiresSeconds = 604_800;
/**
 * A header-signed request is valid within 15 minutes of its timestamp
 * (AmazonS3/latest/API/sig-v4-authenticating-requests.html, "Protect against reuse").
 */
const maxClockSkewMs = 15 * 60 * 1000;

const algorithm = "AWS4-HMAC-SHA256";

/** What the signature says about the body, from `x-amz-content-sha256` (or the presigned default). */
export type PayloadHash =
  /** `UNSIGNED-PAYLOAD`: the body is not covered by the signature. */
  | { kind: "unsigned" }
  /** The hex SHA-256 of the body, which S3 checks once the body has arrived. */
  | { kind: "sha256"; hex: string }
  /** `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: an aws-chunked body with a trailing checksum. */
  | { kind: "streaming-unsigned-trailer" };

export interface SignedRequest {
  method: string;
  /** The path as sent, still percent-encoded. */
  rawPath: string;
  /** The query string as sent, without `?`. */
  rawQuery: string;
  headers: IncomingHttpHeaders;
}

export interface Authenticated {
  accessKeyId: string;
  /** Signed in the query (a presigned URL) or in the Authorization header. */
  via: "query" | "header";
  payload: PayloadHash;
}

/**
 * Verify `req`'s signature against `keys` (access key id → secret access key) at time `now`.
 * Returns the caller's key id and what the body must hash to; throws the CloudError S3 answers:
 * `AccessDenied` (unsigned, expired, unsigned `x-amz-*` headers), `InvalidAccessKeyId`,
 * `SignatureDoesNotMatch`, `RequestTimeTooSkewed`, `AuthorizationQueryParametersError`,
 * `AuthorizationHeaderMalformed`, `InvalidRequest` (Signature Version 2), `InvalidArgument`.
 */
export function authenticate(
  req: SignedRequest,
  keys: ReadonlyMap<string, string>,
  now = Date.now(),
): Authenticated {
  const query = parseQuery(req.rawQuery);
  const param = (name: string) => query.find(([k]) => k === name)?.[1];
  const authorization = header(req.headers, "authorization");
  const presignedV4 = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"].some(
    (name) => param(name) !== undefined,
  );
  const presignedV2 = param("AWSAccessKeyId") !== undefined || param("Signature") !== undefined;
  if (authorization !== undefined && (presignedV4 || presignedV2)) {
    throw new CloudError(
      "InvalidArgument",
      "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
    );
  }
  if (presignedV2 || authorization?.startsWith("AWS ")) {
    // Signature Version 2 is turned off for buckets created since June 2020
    // (docs.aws.amazon.com/AmazonS3/latest/API/specify-signature-version.html#UsingAWSSDK-sig2-deprecation).
    throw new CloudError(
      "InvalidRequest",
      "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
    );
  }
  if (param("X-Amz-Security-Token") !== undefined || header(req.headers, "x-amz-security-token")) {
    // The local cloud issues no temporary credentials, so no session token can be valid.
    throw new CloudError("InvalidToken", "The provided token is malformed or otherwise invalid.");
  }
  if (presignedV4) return presigned(req, query, param, keys, now);
  if (authorization !== undefined) return headerSigned(req, query, authorization, keys, now);
  // Buckets are private (Block Public Access is on by default): anonymous requests are refused.
  throw new CloudError("AccessDenied", "Access Denied", 403);
}

function presigned(
  req: SignedRequest,
  query: [string, string][],
  param: (name: string) => string | undefined,
  keys: ReadonlyMap<string, string>,
  now: number,
): Authenticated {
  const bad = (message: string) => new CloudError("AuthorizationQueryParametersError", message);
  const credential = param("X-Amz-Credential");
  const date = param("X-Amz-Date");
  const expiresRaw = param("X-Amz-Expires");
  const signedHeaders = param("X-Amz-SignedHeaders");
  const signature = param("X-Amz-Signature");
  if (
    credential === undefined ||
    date === undefined ||
    expiresRaw === undefined ||
    signedHeaders === undefined ||
    signature === undefined
  ) {
    throw bad(
      "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
    );
  }
  if (param("X-Amz-Algorithm") !== algorithm) {
    throw bad(`X-Amz-Algorithm only supports "${algorithm}"`);
  }
  const signedAt = parseAmzDate(date);
  if (signedAt === undefined) {
    throw bad("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
  }
  if (!/^\d+$/.test(expiresRaw)) throw bad("X-Amz-Expires must be non-negative");
  const expires = Number(expiresRaw);
  if (expires > maxPresignExpiresSeconds) {
    throw bad(
      `X-Amz-Expires must be less than a week (in seconds) that is; ${maxPresignExpiresSeconds}`,
    );
  }
  const scope = parseCredential(credential, date, bad);
  const secret = secretOf(keys, scope.accessKeyId);
  const signed = parseSignedHeaders(signedHeaders, bad);
  // A presigned URL does not sign its body unless it says otherwise.
  const payloadValue = param("X-Amz-Content-Sha256") ?? "UNSIGNED-PAYLOAD";
  const payload = payloadHash(payloadValue);
  const unsignedQuery = query.filter(([k]) => k !== "X-Amz-Signature");
  verify(req, unsignedQuery, signed, payloadValue, date, scope, secret, signature);
  // Checked after the signature, so only the holder of a genuine URL learns that it expired.
  const expiresAt = signedAt + expires * 1000;
  if (now > expiresAt) {
    throw new CloudError("AccessDenied", "Request has expired", 403, {
      "X-Amz-Expires": expiresRaw,
      Expires: new Date(expiresAt).toISOString(),
      ServerTime: new Date(now).toISOString(),
    });
  }
  return { accessKeyId: scope.accessKeyId, via: "query", payload };
}

function headerSigned(
  req: SignedRequest,
  query: [string, string][],
  authorization: string,
  keys: ReadonlyMap<string, string>,
  now: number,
): Authenticated {
  const bad = (message: string) =>
    new CloudError(
      "AuthorizationHeaderMalformed",
      `The authorization header is malformed; ${message}`,
    );
  if (!authorization.startsWith(`${algorithm} `)) {
    throw new CloudError("InvalidArgument", "Unsupported Authorization Type");
  }
  const parts = new Map<string, string>();
  for (const part of authorization.slice(algorithm.length + 1).split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) parts.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = parts.get("Credential");
  const signedHeaders = parts.get("SignedHeaders");
  const signature = parts.get("Signature");
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    throw bad("the Credential, SignedHeaders and Signature components are required.");
  }
  const date = header(req.headers, "x-amz-date");
  const signedAt = date === undefined ? undefined : parseAmzDate(date);
  if (date === undefined || signedAt === undefined) {
    throw new CloudError(
      "AccessDenied",
      "AWS authentication requires a valid Date or x-amz-date header",
      403,
    );
  }
  const scope = parseCredential(credential, date, bad);
  const secret = secretOf(keys, scope.accessKeyId);
  const signed = parseSignedHeaders(signedHeaders, bad);
  // "The x-amz-content-sha256 header is required for all AWS Signature Version 4 requests", and
  // host, content-type and every x-amz-* header sent must be signed (sig-v4-header-based-auth.html).
  const payloadValue = header(req.headers, "x-amz-content-sha256");
  if (payloadValue === undefined) {
    throw new CloudError(
      "InvalidRequest",
      "Missing required header for this request: x-amz-content-sha256",
    );
  }
  const payload = payloadHash(payloadValue);
  const notSigned = Object.keys(req.headers)
    .filter((h) => h === "host" || h === "content-type" || h.startsWith("x-amz-"))
    .filter((h) => !signed.includes(h));
  if (notSigned.length > 0) {
    throw new CloudError(
      "AccessDenied",
      "There were headers present in the request which were not signed",
      403,
      { HeadersNotSigned: notSigned.join(", ") },
    );
  }
  if (Math.abs(now - signedAt) > maxClockSkewMs) {
    throw new CloudError(
      "RequestTimeTooSkewed",
      "The difference between the request time and the current time is too large.",
      403,
      {
        RequestTime: date,
        ServerTime: new Date(now).toISOString(),
        MaxAllowedSkewMilliseconds: String(maxClockSkewMs),
      },
    );
  }
  verify(req, query, signed, payloadValue, date, scope, secret, signature);
  return { accessKeyId: scope.accessKeyId, via: "header", payload };
}

interface Scope {
  accessKeyId: string;
  /** `<yyyymmdd>/<region>/s3/aws4_request` */
  scope: string;
  date: string;
  region: string;
}

/**
 * `<key id>/<yyyymmdd>/<region>/s3/aws4_request`. Any region is taken: the local cloud answers
 * for whichever region the client was configured with, as one endpoint.
 */
function parseCredential(
  credential: string,
  amzDate: string,
  bad: (message: string) => CloudError,
): Scope {
  const parts = credential.split("/");
  const [accessKeyId, date, region, service, terminator] = parts;
  if (
    parts.length !== 5 ||
    !accessKeyId ||
    !date ||
    !region ||
    service === undefined ||
    terminator === undefined
  ) {
    throw bad(
      `Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`,
    );
  }
  if (date !== amzDate.slice(0, 8)) {
    throw bad("Invalid credential date. Date is not the same as X-Amz-Date.");
  }
  if (service !== "s3") {
    throw bad(
      `Error parsing the X-Amz-Credential parameter; incorrect service "${service}". This endpoint belongs to "s3".`,
    );
  }
  if (terminator !== "aws4_request") {
    throw bad(
      `Error parsing the X-Amz-Credential parameter; incorrect terminal "${terminator}". This endpoint uses "aws4_request".`,
    );
  }
  return { accessKeyId, date, region, scope: `${date}/${region}/s3/aws4_request` };
}

function secretOf(keys: ReadonlyMap<string, string>, accessKeyId: string): string {
  const secret = keys.get(accessKeyId);
  if (secret === undefined) {
    throw new CloudError(
      "InvalidAccessKeyId",
      "The AWS Access Key Id you provided does not exist in our records.",
      403,
      { AWSAccessKeyId: accessKeyId },
    );
  }
  return secret;
}

function parseSignedHeaders(value: string, bad: (message: string) => CloudError): string[] {
  const names = value.split(";");
  if (names.some((n) => n === "" || n !== n.toLowerCase())) {
    throw bad("SignedHeaders must be lower-case header names separated by ';'.");
  }
  // The host header must always be signed (sig-v4-header-based-auth.html, CanonicalHeaders).
  if (!names.includes("host")) throw bad("SignedHeaders must include the host header.");
  return names;
}

function payloadHash(value: string): PayloadHash {
  if (/^[0-9a-f]{64}$/.test(value)) return { kind: "sha256", hex: value };
  if (value === "UNSIGNED-PAYLOAD") return { kind: "unsigned" };
  if (value === "STREAMING-UNSIGNED-PAYLOAD-TRAILER") return { kind: "streaming-unsigned-trailer" };
  if (/^STREAMING-AWS4-(HMAC-SHA256|ECDSA-P256-SHA256)-PAYLOAD(-TRAILER)?$/.test(value)) {
    throw new CloudError(
      "NotImplemented",
      "A header you provided implies functionality that is not implemented",
      501,
      { Header: "x-amz-content-sha256" },
    );
  }
  throw new CloudError(
    "InvalidArgument",
    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
    400,
    { ArgumentName: "x-amz-content-sha256", ArgumentValue: value },
  );
}

function verify(
  req: SignedRequest,
  query: [string, string][],
  signedHeaders: string[],
  payloadValue: string,
  amzDate: string,
  scope: Scope,
  secret: string,
  provided: string,
): void {
  const canonical = canonicalRequest(req, query, signedHeaders, payloadValue);
  const stringToSign = [algorithm, amzDate, scope.scope, sha256Hex(canonical)].join("\n");
  let key = hmac(`AWS4${secret}`, scope.date);
  key = hmac(key, scope.region);
  key = hmac(key, "s3");
  key = hmac(key, "aws4_request");
  const expected = hmac(key, stringToSign);
  const given = /^[0-9a-f]{64}$/.test(provided) ? Buffer.from(provided, "hex") : Buffer.alloc(0);
  if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) {
    throw new CloudError(
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
      403,
      {
        AWSAccessKeyId: scope.accessKeyId,
        StringToSign: stringToSign,
        SignatureProvided: provided,
        CanonicalRequest: canonical,
      },
    );
  }
}

/**
 * HTTPMethod, CanonicalURI, CanonicalQueryString, CanonicalHeaders, SignedHeaders, HashedPayload,
 * one per line (sig-v4-header-based-auth.html). S3 does not normalise the path: each segment is
 * URI-encoded once, `/` kept.
 */
function canonicalRequest(
  req: SignedRequest,
  query: [string, string][],
  signedHeaders: string[],
  payloadValue: string,
): string {
  const path =
    req.rawPath === ""
      ? "/"
      : req.rawPath
          .split("/")
          .map((s) => uriEncode(decode(s)))
          .join("/");
  const canonicalQuery = query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const headers = signedHeaders
    .map((name) => `${name}:${(header(req.headers, name) ?? "").trim().replace(/\s+/g, " ")}\n`)
    .join("");
  return [req.method, path, canonicalQuery, headers, signedHeaders.join(";"), payloadValue].join(
    "\n",
  );
}

/** The query as sent, decoded pair by pair; `+` stays `+`, as S3 reads it. */
function parseQuery(raw: string): [string, string][] {
  if (raw === "") return [];
  return raw
    .split("&")
    .filter((part) => part !== "")
    .map((part) => {
      const eq = part.indexOf("=");
      return eq < 0 ? [decode(part), ""] : [decode(part.slice(0, eq)), decode(part.slice(eq + 1))];
    });
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new CloudError("InvalidURI", "Couldn't parse the specified URI.");
  }
}

/** UriEncode of the SigV4 documents: every byte but A–Z a–z 0–9 - . _ ~ as %XX, upper-case. */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** `yyyyMMdd'T'HHmmss'Z'` → epoch ms. */
function parseAmzDate(value: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const at = Date.UTC(
    Number(m[1]),
    Number(m[2]) - 1,
    Number(m[3]),
    Number(m[4]),
    Number(m[5]),
    Number(m[6]),
  );
  return Number.isNaN(at) ? undefined : at;
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data, "utf8").digest();
}

function sha256Hex(data: string): string {
  return createHash("sha256").update(data, "utf8").digest("hex");
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(",") : v;
}
