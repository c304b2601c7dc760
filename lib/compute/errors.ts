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

/**
 * Errors after which the request may or may not have taken effect, and which a later retry may
 * get past: throttling, server faults, timeouts, connection failures, unparseable replies.
 * Anything with `$fault: "client"` that is not throttling is the request's own fault.
 */
export function isTransientAwsError(err: unknown): boolean {
  if (!(err instanceof Error)) return true;
  const e = err as Error & {
    $fault?: "client" | "server";
    $metadata?: { httpStatusCode?: number };
    code?: string;
  };
  const throttling = /Throttl|RequestLimitExceeded|TooManyRequests|SlowDown|RequestThrottled/i;
  if (throttling.test(e.name)) return true;
  if (e.$fault === "server") return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  if (e.$fault === "client" || (status !== undefined && status >= 400)) return false;
  // No HTTP answer at all: timeouts, refused or reset connections, parse failures.
  return true;
}
