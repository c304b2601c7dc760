import { OpenAPIHono } from "@hono/zod-openapi";
import type { Deps } from "../deps.js";
import { ApiError } from "./errors.js";

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
 * fields, the same for every route.
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
    },
  });
}
