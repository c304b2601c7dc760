import { isThrottlingError, isTransientError } from "@smithy/core/retry";

/**
 * What is safe to say about an AWS SDK error: its code and message (never credentials, never
 * request bodies). `misconfigured` marks a refusal of the deployment's own identity (a missing
 * IAM permission, bad or expired credentials): retrying cannot help until an operator acts, so
 * it is surfaced — but it says nothing about an instance either.
 */
export interface AwsProblem {
  code: string;
  message: string;
  misconfigured?: true;
}

/** The problem an SDK error describes; `err.name` is the service's error code in SDK v3. */
export function describeAwsError(err: unknown): AwsProblem {
  const misconfigured = isPermissionError(err) ? { misconfigured: true as const } : {};
  if (err instanceof Error) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const message = err.message.slice(0, 500);
    return {
      code: err.name || "Error",
      message: status ? `${message} (HTTP ${status})` : message,
      ...misconfigured,
    };
  }
  return { code: "Error", message: String(err).slice(0, 500), ...misconfigured };
}

/** The service's error code of an SDK error, if it has one. */
export const awsErrorCode = (err: unknown): string | undefined =>
  err instanceof Error ? err.name : undefined;

// Codes by which EC2, SSM, S3 and the credential chain refuse the caller's identity
// (EC2: docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html "UnauthorizedOperation",
// "AuthFailure", "OptInRequired"; SSM/JSON services: AccessDeniedException,
// UnrecognizedClientException, ExpiredTokenException; S3: AmazonS3/latest/API/ErrorResponses.html
// "AccessDenied", "InvalidAccessKeyId", "ExpiredToken"; the SDK's own CredentialsProviderError when
// no credentials resolve). The SDK's classifiers have no such category: they only know what to retry.
const PERMISSION_CODES: ReadonlySet<string> = new Set([
  "AccessDenied",
  "AccessDeniedException",
  "AllAccessDisabled",
  "AuthFailure",
  "Blocked",
  "CredentialsProviderError",
  "ExpiredToken",
  "ExpiredTokenException",
  "InvalidAccessKeyId",
  "InvalidClientTokenId",
  "OptInRequired",
  "UnauthorizedOperation",
  "UnrecognizedClientException",
]);

/** The deployment's identity was refused: a missing permission or bad/expired credentials. */
export function isPermissionError(err: unknown): boolean {
  return err instanceof Error && PERMISSION_CODES.has(err.name);
}

/**
 * Errors after which the request may or may not have taken effect, and which a later retry may
 * get past. The SDK's own classifiers (`@smithy/core/retry`: throttling codes and HTTP 429,
 * timeouts, connection errors, 500/502/503/504, the retryable trait, and the same through
 * `cause`) decide first; on top of them, what they leave out and this product still must not
 * read as the request's own fault: any other 5xx or `$fault: "server"`, a code that names
 * throttling but is not on their list, and no HTTP answer at all (a reply that did not parse).
 */
export function isTransientAwsError(err: unknown): boolean {
  if (!(err instanceof Error)) return true;
  const e = err as Error & {
    $fault?: "client" | "server";
    $metadata?: { httpStatusCode?: number };
  };
  const sdkError = e as unknown as Parameters<typeof isTransientError>[0];
  if (isThrottlingError(sdkError) || isTransientError(sdkError)) return true;
  if (/Throttl|TooManyRequests/i.test(e.name)) return true;
  const status = e.$metadata?.httpStatusCode;
  if ((status !== undefined && status >= 500) || e.$fault === "server") return true;
  if (e.$fault === "client" || (status !== undefined && status >= 400)) return false;
  return true;
}

/**
 * How an AWS call ended, as an operator reads it in a DEBUG line: `ok`; `refused` — the
 * deployment's identity was refused ({@link isPermissionError}); `transient` — throttling, a 5xx,
 * a timeout or a dropped connection, which a later call may get past; `rejected` — the service
 * answered that this request is wrong (a 4xx such as a missing instance or a bad state);
 * `unknown` — no answer that could be read, so whether it took effect cannot be said
 * ({@link isTransientAwsError} treats it as transient).
 */
export type AwsOutcome = "ok" | "refused" | "transient" | "rejected" | "unknown";

/** The outcome class of a failed AWS call (see {@link AwsOutcome}). */
export function awsFailureOutcome(err: unknown): Exclude<AwsOutcome, "ok"> {
  if (isPermissionError(err)) return "refused";
  if (!(err instanceof Error)) return "unknown";
  const e = err as Error & {
    $fault?: "client" | "server";
    $metadata?: { httpStatusCode?: number };
  };
  const sdkError = e as unknown as Parameters<typeof isTransientError>[0];
  if (isThrottlingError(sdkError) || isTransientError(sdkError)) return "transient";
  if (/Throttl|TooManyRequests/i.test(e.name)) return "transient";
  const status = e.$metadata?.httpStatusCode;
  if ((status !== undefined && status >= 500) || e.$fault === "server") return "transient";
  if (e.$fault === "client" || (status !== undefined && status >= 400)) return "rejected";
  return "unknown";
}
