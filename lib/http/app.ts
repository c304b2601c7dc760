import { createRoute, z } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { isDatabaseUnavailable } from "../db/errors.js";
import type { Deps } from "../deps.js";
import type { SourceRegistry } from "../plugins/sources.js";
import { safeError } from "../redact.js";
import { VERSION } from "../version.js";
import { type AllowedMethods, allowedMethods } from "./allowed-methods.js";
import { type AppEnv, newRouter } from "./context.js";
import { requestDeadline } from "./deadline.js";
import { deliverCaused } from "./deliver-caused.js";
import { ApiError, DATABASE_RETRY_AFTER_SECONDS, errorBody, errorResponses } from "./errors.js";
import { accessLog, bodyLimit, emptyJsonBody } from "./middleware.js";
import { installedReferenceUi, type ReferenceUi, referenceUiRoutes } from "./reference-ui.js";
import { commandRoutes } from "./routes/commands.js";
import { instanceRoutes } from "./routes/instances.js";
import { lifecycleRoutes } from "./routes/lifecycle.js";
import { pluginRoutes } from "./routes/plugins.js";
import { registryRoutes } from "./routes/registry.js";
import { webhookRoutes } from "./routes/webhooks.js";
import { workspaceRoutes } from "./routes/workspaces.js";

export { VERSION };

/**
 * The whole HTTP API over the given dependencies. Stateless: everything it knows lives in the
 * database, so any number of Lambda containers can serve it.
 */
export interface AppOptions {
  /** Plugin source schemes; a deployment registers its own next to `local://` and `github://`. */
  sources?: SourceRegistry;
  /** Each request's time budget (tests); default `REQUEST_DEADLINE_SECONDS`, or Lambda's. */
  requestBudgetMs?: number;
  /** Where `/docs` finds the reference UI's script; default: this checkout's node_modules. */
  referenceUi?: ReferenceUi;
}

export function createApp(deps: Deps, opts: AppOptions = {}) {
  const app = newRouter();

  app.use("*", requestId({ headerName: "x-request-id" }));
  app.use("*", async function provideDeps(c, next) {
    c.set("deps", deps);
    await next();
  });
  app.use("*", requestDeadline(opts.requestBudgetMs));
  app.use("*", accessLog());
  app.use("*", emptyJsonBody());
  app.use("*", bodyLimit());
  app.use("*", deliverCaused());

  app.onError((err, c) => {
    const rid = c.get("requestId") ?? "unknown";
    const render = (e: ApiError) => {
      if (e.extra.retryAfterSeconds !== undefined) {
        c.header("Retry-After", String(e.extra.retryAfterSeconds));
      }
      return c.json(errorBody(e, rid), e.status);
    };
    if (err instanceof ApiError) return render(err);
    // zod-openapi answers a body not declared as JSON with its own 415; it is bad input like
    // any other, not an internal error.
    if (err instanceof HTTPException && err.status === 415) {
      const problem = { path: "content-type", message: "must be application/json" };
      return render(
        new ApiError("VALIDATION_FAILED", "The body must be JSON.", {
          fields: [problem],
          hint: "Send a JSON body with Content-Type: application/json.",
        }),
      );
    }
    // Hono throws its own HTTPException for malformed JSON bodies and the like.
    if (isMalformedBody(err)) {
      return render(new ApiError("VALIDATION_FAILED", "The body is not valid JSON."));
    }
    // A database that cannot be reached (or is shutting down, or full) is the operator's outage,
    // not a bug: the client may retry. A statement the database refused stays INTERNAL.
    if (isDatabaseUnavailable(err)) {
      deps.log.warn("database unavailable", { requestId: rid, error: safeError(err) });
      return render(
        new ApiError("DATABASE_UNAVAILABLE", "The database is not available right now.", {
          hint: `Retry in ${DATABASE_RETRY_AFTER_SECONDS} seconds.`,
          retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS,
        }),
      );
    }
    // The error's safe description only: a failed query's message and properties carry its
    // parameters (env values, token hashes).
    deps.log.error("unhandled error", { requestId: rid, error: safeError(err) });
    return render(new ApiError("INTERNAL", "Internal error."));
  });
  // Known only once every route is mounted (below); the fallback runs on requests, after that.
  let allowed: AllowedMethods | undefined;
  app.notFound((c) => {
    const rid = c.get("requestId") ?? "unknown";
    allowed ??= allowedMethods(app.routes);
    const methods = allowed(c.req.path);
    // A served method that found nothing (a handler's own notFound) is a 404, not a 405.
    if (methods.length > 0 && !methods.includes(c.req.method)) {
      c.header("Allow", methods.join(", "));
      const err = new ApiError(
        "METHOD_NOT_ALLOWED",
        `${c.req.method} is not served on this path.`,
        { hint: `Use ${methods.join(", ")}.` },
      );
      return c.json(errorBody(err, rid), err.status);
    }
    return c.json(errorBody(new ApiError("NOT_FOUND", "No such route."), rid), 404);
  });

  app.openapi(
    createRoute({
      method: "get",
      path: "/health",
      tags: ["meta"],
      summary: "Liveness; touches neither the database nor AWS",
      responses: {
        200: {
          description: "Serving.",
          content: {
            "application/json": { schema: z.object({ ok: z.literal(true), version: z.string() }) },
          },
        },
        ...errorResponses("INTERNAL"),
      },
    }),
    (c) => c.json({ ok: true as const, version: VERSION }, 200),
  );

  // Every route authenticates itself (declared with its createRoute), so mount order is free.
  app.route("/", pluginRoutes(opts.sources));
  app.route("/", workspaceRoutes);
  app.route("/", instanceRoutes);
  app.route("/", lifecycleRoutes);
  app.route("/", commandRoutes);
  app.route("/", registryRoutes);
  app.route("/", webhookRoutes);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "The admin token, or a workspace token where a route says so.",
  });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "workspace-control-plane",
      version: VERSION,
      description: "Control plane for AI-agent workspaces on AWS.",
    },
  });
  app.route("/", referenceUiRoutes(opts.referenceUi ?? installedReferenceUi()));

  return app;
}

export type App = ReturnType<typeof createApp>;
export type { AppEnv };

function isMalformedBody(err: Error): boolean {
  return "status" in err && err.status === 400 && /json|body/i.test(err.message);
}
