import { z } from "@hono/zod-openapi";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every error code the API answers with. Adding one without a status breaks the build. */
export type ErrorCode =
  | "VALIDATION_FAILED"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "WORKSPACE_NOT_FOUND"
  | "WORKSPACE_REMOVED"
  | "WORKSPACE_STATE_CONFLICT"
  | "IDEMPOTENCY_KEY_REUSED"
  | "EXTERNAL_RUNTIME"
  | "PAYLOAD_TOO_LARGE"
  | "INSTANCE_NOT_RUNNING"
  | "INSTANCE_STATE_UNKNOWN"
  | "INSTANCE_UNREACHABLE"
  | "LAUNCH_FAILED"
  | "UNKNOWN_SOURCE_SCHEME"
  | "INVALID_PLUGIN_NAME"
  | "UNPINNED_SOURCE"
  | "PLUGIN_NOT_ALLOWED"
  | "PLUGIN_NOT_FOUND"
  | "PLUGIN_NOT_INSTALLED"
  | "PLUGIN_BUSY"
  | "PLUGIN_NAME_MISMATCH"
  | "SOURCE_FETCH_FAILED"
  | "SOURCE_FETCH_TIMEOUT"
  | "PLUGIN_TOO_LARGE"
  | "INVALID_ARCHIVE"
  | "INVALID_MANIFEST"
  | "INTEGRITY_MISMATCH"
  | "COMMAND_FAILED"
  | "COMMAND_NOT_FOUND"
  | "COMMAND_RUNNING"
  | "COMMAND_UNCONFIRMED"
  | "COMMAND_OUTPUT_MISSING"
  | "UPSTREAM_UNAVAILABLE"
  | "INTERNAL";

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
      return 404;
    case "WORKSPACE_REMOVED":
    case "WORKSPACE_STATE_CONFLICT":
    case "IDEMPOTENCY_KEY_REUSED":
    case "PLUGIN_BUSY":
    case "COMMAND_RUNNING":
    case "COMMAND_UNCONFIRMED":
      return 409;
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
      return 503;
    case "SOURCE_FETCH_TIMEOUT":
      return 504;
    default: {
      const unreachable: never = code;
      throw new Error(`no status for ${String(unreachable)}`);
    }
  }
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
    readonly extra: { hint?: string; fields?: { path: string; message: string }[] } = {},
  ) {
    super(message);
  }
  get status(): ContentfulStatusCode {
    return codeToStatus(this.code);
  }
}

export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "WORKSPACE_NOT_FOUND" }),
      message: z.string(),
      hint: z.string().optional(),
      fields: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
      requestId: z.string(),
    }),
  })
  .openapi("Error");

export type ErrorBody = z.infer<typeof ErrorBody>;

export function errorBody(err: ApiError, requestId: string): ErrorBody {
  return {
    error: {
      code: err.code,
      message: err.message,
      ...(err.extra.hint !== undefined && { hint: err.extra.hint }),
      ...(err.extra.fields !== undefined && { fields: err.extra.fields }),
      requestId,
    },
  };
}

const descriptions: Partial<Record<number, string>> = {
  400: "Invalid input",
  401: "Missing or invalid token",
  403: "Token not allowed here",
  404: "Not found",
  409: "Conflict with the current state",
  413: "Payload too large",
  422: "Not applicable to this workspace",
  500: "Internal error",
  502: "Upstream failure",
  503: "Instance or upstream not available",
  504: "Upstream timeout",
};

/** OpenAPI response entries for the given error statuses, all with the one error body. */
export function errorResponses(...statuses: number[]) {
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      {
        description: descriptions[s] ?? "Error",
        content: { "application/json": { schema: ErrorBody } },
      },
    ]),
  );
}
