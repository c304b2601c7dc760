import { OpenAPIHono } from "@hono/zod-openapi";
import type { Deps } from "../deps.js";
import { ApiError } from "./errors.js";
import { illFormedStringPaths } from "./well-formed.js";

/** Who is calling, decided once by the auth middleware. */
export type Caller =
  | { kind: "admin" }
  | { kind: "workspace"; workspaceId: string; tokenPrefix: string };

export type AppEnv = {
  Variables: {
    requestId: string;
    deps: Deps;
    caller: Caller;
  };
};

/**
 * A router whose validation failures become the API's 400 `VALIDATION_FAILED` with the failing
 * fields, the same for every route. Every string that passed its schema must also be
 * well-formed Unicode: checked here once for every route, body, query and header, rather than
 * on each string field of each schema, so a field added later cannot forget it.
 */
export function newRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        throw new ApiError("VALIDATION_FAILED", "The request is not valid.", {
          fields: result.error.issues.map((i) => ({
            path: i.path.join(".") || "(body)",
            message: i.message,
          })),
        });
      }
      const illFormed = illFormedStringPaths(result.data);
      if (illFormed.length > 0) {
        throw new ApiError("VALIDATION_FAILED", "The request is not valid.", {
          fields: illFormed.map((path) => ({
            path,
            message: "must be well-formed Unicode (it holds a lone surrogate)",
          })),
        });
      }
    },
  });
}
