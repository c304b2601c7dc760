/**
 * What is safe to say about an AWS SDK error: its code and message (never credentials, never
 * request bodies). `err.name` is the service's error code in SDK v3.
 */
export function describeAwsError(err: unknown): { code: string; message: string } {
  if (err instanceof Error) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const message = err.message.slice(0, 500);
    return { code: err.name || "Error", message: status ? `${message} (HTTP ${status})` : message };
  }
  return { code: "Error", message: String(err).slice(0, 500) };
}

/** The service's error code of an SDK error, if it has one. */
export const awsErrorCode = (err: unknown): string | undefined =>
  err instanceof Error ? err.name : undefined;

// What the SDK's standard retry strategy itself treats as throttling or transient
// (@smithy/core retry/service-error-classification, constants.ts): codes it retries because a
// later attempt may succeed. Classifying them as the request's own fault would fail a workspace
// for a busy API.
const THROTTLING_CODES: ReadonlySet<string> = new Set([
  "BandwidthLimitExceeded",
  "EC2ThrottledException",
  "LimitExceededException",
  "PriorRequestNotComplete",
  "ProvisionedThroughputExceededException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "SlowDown",
  "ThrottledException",
  "Throttling",
  "ThrottlingException",
  "TooManyRequestsException",
  "TransactionInProgressException",
]);
const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
]);
const NETWORK_CODES: ReadonlySet<string> = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * Errors after which the request may or may not have taken effect, and which a later retry may
 * get past: throttling (any code the SDK retries as throttling, and HTTP 429), server faults,
 * timeouts (including S3's 400 `RequestTimeout`), errors the service models as retryable,
 * connection failures, unparseable replies. Anything else with `$fault: "client"` or a 4xx is
 * the request's own fault.
 */
export function isTransientAwsError(err: unknown): boolean {
  if (!(err instanceof Error)) return true;
  const e = err as Error & {
    $fault?: "client" | "server";
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
    code?: string;
  };
  if (THROTTLING_CODES.has(e.name) || TRANSIENT_CODES.has(e.name)) return true;
  if (/Throttl|TooManyRequests/i.test(e.name)) return true;
  if (e.$retryable !== undefined) return true;
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status === 429 || (status !== undefined && status >= 500)) return true;
  if (e.$fault === "server") return true;
  if (e.$fault === "client" || (status !== undefined && status >= 400)) return false;
  // No HTTP answer at all: timeouts, refused or reset connections, parse failures.
  return true;
}
