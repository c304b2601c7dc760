import { createRoute, z } from "@hono/zod-openapi";
import { checkInstance, type InstanceCheck } from "../../compute/instances.js";
import { consoleOutput } from "../../compute/launch.js";
import { WORKSPACE_STATUSES } from "../../db/schema.js";
import { isExternal, toApi, type WorkspaceRow } from "../../workspaces/model.js";
import { restartWorkspace } from "../../workspaces/restart.js";
import { newRouter } from "../context.js";
import { ApiError, AUTH_ERRORS, errorResponses, STORE_ERRORS } from "../errors.js";
import { authenticate } from "../middleware.js";
import { IdParam, security } from "../openapi.js";
import { WorkspaceSchema } from "../workspace-schema.js";
import { workspaceOr404 } from "./workspaces.js";

const CheckSchema = z
  .object({
    outcome: z.enum(["running", "stopped", "transient", "none"]),
    instanceId: z.string().nullable(),
    state: z.string().nullable(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
  })
  .openapi("InstanceCheck");

type CheckView = z.infer<typeof CheckSchema>;

/** The API's view of a running-check outcome; exhaustive, so a fourth outcome breaks the build. */
export function checkView(check: InstanceCheck): CheckView {
  switch (check.outcome) {
    case "running":
    case "stopped":
      return { outcome: check.outcome, instanceId: check.instanceId, state: check.state };
    case "transient":
      return {
        outcome: "transient",
        instanceId: check.instanceId,
        state: null,
        error: check.error,
      };
    default: {
      const unreachable: never = check;
      throw new Error(`unhandled outcome ${JSON.stringify(unreachable)}`);
    }
  }
}

function assertInstanceBacked(row: WorkspaceRow, what: string): void {
  if (isExternal(row)) {
    throw new ApiError("EXTERNAL_RUNTIME", `An external workspace has no instance to ${what}.`, {
      hint: "External agents run elsewhere; see GET /workspaces/{id}/status for their heartbeat.",
    });
  }
}

const removedWhileRestarting = () =>
  new ApiError("WORKSPACE_REMOVED", "The workspace was removed while restarting.");

const launchFailed = (cause: string) =>
  new ApiError(
    "LAUNCH_FAILED",
    `EC2 refused to launch the new instance (${cause.split(":")[0]}); the workspace is failed.`,
    { hint: "Its lastError (GET /workspaces/{id}) names the cause; fix it, then restart again." },
  );

const changedWhileRestarting = () =>
  new ApiError(
    "WORKSPACE_STATE_CONFLICT",
    "The workspace changed while restarting; read it and try again.",
  );

export const instanceRoutes = newRouter();

instanceRoutes.openapi(
  createRoute({
    method: "get",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}/status",
    tags: ["instances"],
    summary: "Live status: the running check of the workspace's instance (read-only)",
    security,
    request: { params: IdParam },
    responses: {
      200: {
        description: "The stored status and a live check.",
        content: {
          "application/json": {
            schema: z.object({
              status: z.enum(WORKSPACE_STATUSES),
              check: CheckSchema,
              heartbeatAgeSeconds: z.number().nullable(),
            }),
          },
        },
      },
      ...errorResponses(AUTH_ERRORS, "WORKSPACE_NOT_FOUND", STORE_ERRORS),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row = await workspaceOr404(deps.db, c.req.valid("param").id);
    const check: CheckView =
      isExternal(row) || row.instanceId === null
        ? { outcome: "none", instanceId: row.instanceId, state: null }
        : checkView(await checkInstance(deps, row.instanceId, row.launchedAt));
    const beat = row.lastHeartbeatAt;
    return c.json(
      {
        status: row.status,
        check,
        heartbeatAgeSeconds:
          beat === null
            ? null
            : Math.max(0, Math.round((deps.clock.now().getTime() - beat.getTime()) / 1000)),
      },
      200,
    );
  },
);

instanceRoutes.openapi(
  createRoute({
    method: "post",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}/restart",
    tags: ["instances"],
    summary: "Terminate the instance and launch a new one (new generation)",
    security,
    request: { params: IdParam },
    responses: {
      202: {
        description:
          "Relaunching; the workspace is provisioning (with instanceId null when the launch " +
          "failed transiently: the sweep re-drives it).",
        content: { "application/json": { schema: z.object({ workspace: WorkspaceSchema }) } },
      },
      ...errorResponses(
        AUTH_ERRORS,
        "WORKSPACE_NOT_FOUND",
        "WORKSPACE_REMOVED",
        "WORKSPACE_STATE_CONFLICT",
        "EXTERNAL_RUNTIME",
        "LAUNCH_FAILED",
        STORE_ERRORS,
      ),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row = await workspaceOr404(deps.db, c.req.valid("param").id);
    assertInstanceBacked(row, "restart");
    if (row.status === "removing" || row.status === "removed") {
      throw new ApiError("WORKSPACE_REMOVED", "The workspace is removed.");
    }
    const result = await restartWorkspace(deps, row);
    switch (result.kind) {
      case "launched":
      case "pending":
        return c.json({ workspace: toApi(result.row, deps.config) }, 202);
      case "failed":
        throw launchFailed(result.error.code);
      case "removed":
        throw removedWhileRestarting();
      case "superseded":
        // Another writer moved the row on during the launch: a DELETE (the new instance, if any,
        // is terminated by the launch), the sweep recording the same launch, or a second restart.
        switch (result.row.status) {
          case "removing":
          case "removed":
            throw removedWhileRestarting();
          case "failed":
            throw launchFailed(result.row.lastError ?? "unknown");
          default:
            return c.json({ workspace: toApi(result.row, deps.config) }, 202);
        }
      case "conflict":
        throw changedWhileRestarting();
      default: {
        const unreachable: never = result;
        throw new Error(`unhandled restart result ${JSON.stringify(unreachable)}`);
      }
    }
  },
);

instanceRoutes.openapi(
  createRoute({
    method: "get",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}/console",
    tags: ["instances"],
    summary: "The instance's console output (the most recent 64 KB)",
    security,
    request: { params: IdParam },
    responses: {
      200: {
        description: "Decoded console output.",
        content: {
          "application/json": {
            schema: z.object({
              instanceId: z.string(),
              output: z.string(),
              timestamp: z.string().nullable(),
            }),
          },
        },
      },
      ...errorResponses(
        AUTH_ERRORS,
        "WORKSPACE_NOT_FOUND",
        "WORKSPACE_STATE_CONFLICT",
        "INSTANCE_GONE",
        "EXTERNAL_RUNTIME",
        "UPSTREAM_UNAVAILABLE",
        STORE_ERRORS,
      ),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row = await workspaceOr404(deps.db, c.req.valid("param").id);
    assertInstanceBacked(row, "read the console of");
    if (row.instanceId === null) {
      throw new ApiError("WORKSPACE_STATE_CONFLICT", "The workspace has no instance yet.", {
        hint: "The launch is pending; the sweep re-drives it.",
      });
    }
    const out = await consoleOutput(deps, row.instanceId, row.launchedAt);
    switch (out.kind) {
      case "ok":
        break;
      case "gone":
        throw new ApiError(
          "INSTANCE_GONE",
          `EC2 no longer has instance ${row.instanceId} (${out.error.code}); its console output went with it.`,
          { hint: "POST /workspaces/{id}/restart launches a new instance." },
        );
      case "error":
        if (out.transient) {
          throw new ApiError(
            "UPSTREAM_UNAVAILABLE",
            `EC2 did not return the console output (${out.error.code}).`,
            { hint: "This is usually transient; retry shortly." },
          );
        }
        // A refused permission or a malformed stored id: this deployment's fault, not the
        // caller's, and the operator must see it.
        deps.log.error("console output refused", {
          workspaceId: row.id,
          instanceId: row.instanceId,
          error: out.error,
        });
        throw new ApiError(
          "INTERNAL",
          `EC2 refused to return the console output (${out.error.code}).`,
        );
      default: {
        const unreachable: never = out;
        throw new Error(`unhandled console outcome ${JSON.stringify(unreachable)}`);
      }
    }
    return c.json(
      {
        instanceId: row.instanceId,
        output: out.output,
        timestamp: out.timestamp?.toISOString() ?? null,
      },
      200,
    );
  },
);
