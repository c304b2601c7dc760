import { z } from "@hono/zod-openapi";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { redactText } from "../redact.js";

/**
 * Every error code the API answers with: the `code` of every error body, and the enum each
 * route's error responses list in the OpenAPI document. Adding one without a status breaks the
 * build; one that no route declares fails test/unit/error-codes.test.ts.
 */
export const ERROR_CODES = [
  "VALIDATION_FAILED",
  "UNAUTHORIZED",
  "FORBIDDEN",
  "NOT_FOUND",
  "METHOD_NOT_ALLOWED",
  "WORKSPACE_NOT_FOUND",
  "WORKSPACE_REMOVED",
  "WORKSPACE_STATE_CONFLICT",
  "IDEMPOTENCY_KEY_REUSED",
  "EXTERNAL_RUNTIME",
  "PAYLOAD_TOO_LARGE",
  "INSTANCE_NOT_RUNNING",
  "INSTANCE_STATE_UNKNOWN",
  "INSTANCE_UNREACHABLE",
  "INSTANCE_GONE",
  "LAUNCH_FAILED",
  "UNKNOWN_SOURCE_SCHEME",
  "INVALID_PLUGIN_NAME",
  "UNPINNED_SOURCE",
  "PLUGIN_NOT_ALLOWED",
  "PLUGIN_NOT_FOUND",
  "PLUGIN_NOT_INSTALLED",
  "PLUGIN_BUSY",
  "WORKSPACE_STOPPED",
  "WAIT_TIMEOUT",
  "PLUGIN_NAME_MISMATCH",
  "SOURCE_FETCH_FAILED",
  "SOURCE_FETCH_TIMEOUT",
  "PLUGIN_TOO_LARGE",
  "INVALID_ARCHIVE",
  "INVALID_MANIFEST",
  "INTEGRITY_MISMATCH",
  "COMMAND_FAILED",
  "COMMAND_NOT_FOUND",
  "COMMAND_RUNNING",
  "COMMAND_UNCONFIRMED",
  "COMMAND_OUTPUT_MISSING",
  "WEBHOOK_NOT_FOUND",
  "WEBHOOK_DELIVERY_NOT_FOUND",
  "UPSTREAM_UNAVAILABLE",
  "DATABASE_UNAVAILABLE",
  "INTERNAL",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export function codeToStatus(code: ErrorCode): ContentfulStatusCode {
  switch (code) {
    case "VALIDATION_FAILED":
    case "UNKNOWN_SOURCE_SCHEME":
    case "INVALID_PLUGIN_NAME":
    case "PLUGIN_NAME_MISMATCH":
      return 400;
    case "UNAUTHORIZED":
      return 401;
    case "FORBIDDEN":
    case "PLUGIN_NOT_ALLOWED":
      return 403;
    case "NOT_FOUND":
    case "WORKSPACE_NOT_FOUND":
    case "PLUGIN_NOT_FOUND":
    case "PLUGIN_NOT_INSTALLED":
    case "COMMAND_NOT_FOUND":
    case "COMMAND_OUTPUT_MISSING":
    case "WEBHOOK_NOT_FOUND":
    case "WEBHOOK_DELIVERY_NOT_FOUND":
      return 404;
    case "METHOD_NOT_ALLOWED":
      return 405;
    case "WORKSPACE_REMOVED":
    case "WORKSPACE_STATE_CONFLICT":
    case "INSTANCE_GONE":
    case "IDEMPOTENCY_KEY_REUSED":
    case "PLUGIN_BUSY":
    case "WORKSPACE_STOPPED":
    case "COMMAND_RUNNING":
    case "COMMAND_UNCONFIRMED":
      return 409;
    case "WAIT_TIMEOUT":
      return 408;
    case "PAYLOAD_TOO_LARGE":
    case "PLUGIN_TOO_LARGE":
      return 413;
    case "EXTERNAL_RUNTIME":
    case "UNPINNED_SOURCE":
    case "INVALID_ARCHIVE":
    case "INVALID_MANIFEST":
    case "INTEGRITY_MISMATCH":
      return 422;
    case "INTERNAL":
      return 500;
    case "SOURCE_FETCH_FAILED":
    case "COMMAND_FAILED":
    case "LAUNCH_FAILED":
      return 502;
    case "INSTANCE_NOT_RUNNING":
    case "INSTANCE_STATE_UNKNOWN":
    case "INSTANCE_UNREACHABLE":
    case "UPSTREAM_UNAVAILABLE":
    case "DATABASE_UNAVAILABLE":
      return 503;
    case "SOURCE_FETCH_TIMEOUT":
      return 504;
    default: {
      const unreachable: never = code;
      throw new Error(`no status for ${String(unreachable)}`);
    }
  }
}

/** What an error body may carry besides its code and message. */
export interface ApiErrorExtra {
  hint?: string;
  fields?: { path: string; message: string }[];
  /** Sent as `Retry-After` (seconds): when to try again is known. */
  retryAfterSeconds?: number;
}

/**
 * An expected failure a route answers with. Thrown by routes and middleware, rendered by the one
 * `onError` in `createApp`; nothing else builds an error body.
 */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: ApiErrorExtra = {},
  ) {
    super(message);
  }
  get status(): ContentfulStatusCode {
    return codeToStatus(this.code);
  }
}

const errorObject = (code: z.ZodType<string>) =>
  z.object({
    error: z.object({
      code,
      message: z.string(),
      hint: z.string().optional(),
      fields: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
      requestId: z.string(),
    }),
  });

export const ErrorBody = errorObject(z.enum(ERROR_CODES)).openapi("Error");

export type ErrorBody = z.infer<typeof ErrorBody>;

/**
 * The one error body. Message and hint are scrubbed of the shapes secrets travel in (a URL's
 * query or credentials, a bearer token) on top of the messages not quoting them: an error body
 * must not hand a secret back, not even to the caller who sent it (it ends up in their logs).
 */
export function errorBody(err: ApiError, requestId: string): ErrorBody {
  return {
    error: {
      code: err.code,
      message: redactText(err.message),
      ...(err.extra.hint !== undefined && { hint: redactText(err.extra.hint) }),
      ...(err.extra.fields !== undefined && {
        fields: err.extra.fields.map((f) => ({ path: f.path, message: redactText(f.message) })),
      }),
      requestId,
    },
  };
}

/** Codes every authenticated route may answer: no or an unknown token, a token not taken here. */
export const AUTH_ERRORS = ["UNAUTHORIZED", "FORBIDDEN"] as const satisfies readonly ErrorCode[];
/** Codes every route that reads or writes the database may answer. */
export const STORE_ERRORS = [
  "DATABASE_UNAVAILABLE",
  "INTERNAL",
] as const satisfies readonly ErrorCode[];
/** Codes every route that takes a JSON body may answer. */
export const BODY_ERRORS = [
  "VALIDATION_FAILED",
  "PAYLOAD_TOO_LARGE",
] as const satisfies readonly ErrorCode[];

/** Codes of a command sent to an instance: targetError, unreachableError and sendError. */
export const TARGET_ERRORS = [
  "INSTANCE_NOT_RUNNING",
  "INSTANCE_STATE_UNKNOWN",
  "INSTANCE_UNREACHABLE",
] as const satisfies readonly ErrorCode[];

/** How long a client should wait after 503 DATABASE_UNAVAILABLE: one connection attempt's time. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

const descriptions: Partial<Record<number, string>> = {
  400: "Invalid input",
  401: "Missing or invalid token",
  403: "Token not allowed here",
  404: "Not found",
  405: "Method not allowed on this path",
  408: "The awaited state did not come in time",
  409: "Conflict with the current state",
  413: "Payload too large",
  422: "Not applicable to this workspace",
  500: "Internal error",
  502: "Upstream failure",
  503: "Instance, upstream or database not available",
  504: "Upstream timeout",
};

/**
 * OpenAPI response entries for the error codes a route can answer, grouped by their status; each
 * status's body lists its codes as an enum, so a generated client knows every code per route.
 */
export function errorResponses(...codes: (ErrorCode | readonly ErrorCode[])[]) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes.flat())) {
    const status = codeToStatus(code);
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, list]) => [
      status,
      {
        description: `${descriptions[status] ?? "Error"}: ${list.join(", ")}`,
        ...(list.includes("DATABASE_UNAVAILABLE") && {
          headers: {
            "Retry-After": {
              description: "Seconds to wait before trying again (DATABASE_UNAVAILABLE).",
              schema: { type: "integer" as const },
            },
          },
        }),
        content: {
          "application/json": {
            schema: errorObject(z.enum(list as [ErrorCode, ...ErrorCode[]])),
          },
        },
      },
    ]),
  );
}
