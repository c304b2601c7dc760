import { createRoute, z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { WORKSPACE_STATUSES, type WorkspaceStatus, workspaces } from "../../db/schema.js";
import { remainingMs } from "../../deadline.js";
import { recordActivity } from "../../workspaces/activity.js";
import {
  type StartResult,
  type StopResult,
  startWorkspace,
  stopWorkspace,
} from "../../workspaces/lifecycle.js";
import { isExternal, toApi, type WorkspaceRow } from "../../workspaces/model.js";
import { getWorkspace } from "../../workspaces/queries.js";
import { newRouter } from "../context.js";
import { ApiError, AUTH_ERRORS, BODY_ERRORS, errorResponses, STORE_ERRORS } from "../errors.js";
import { authenticate } from "../middleware.js";
import { IdParam, json, security } from "../openapi.js";
import { WorkspaceSchema } from "../workspace-schema.js";
import { IdleSettings, workspaceOr404 } from "./workspaces.js";

// Stop, start, idle settings, reported activity, and waiting for a state (issue: an intentional
// stop is never confused with a crash; only EC2 confirms `stopped`, only readiness `online`).

const WorkspaceBody = z.object({ workspace: WorkspaceSchema });

function refuseExternal(row: WorkspaceRow, what: string): void {
  if (isExternal(row)) {
    throw new ApiError("EXTERNAL_RUNTIME", `An external workspace has no instance to ${what}.`, {
      hint: "External agents run elsewhere; they stop and start themselves.",
    });
  }
}

const removed = () => new ApiError("WORKSPACE_REMOVED", "The workspace is removed.");

/** The answer of a stop: 202 while stopping, 200 when already stopped, the right error else. */
export function stopAnswer(result: StopResult): { status: 200 | 202; row: WorkspaceRow } {
  switch (result.kind) {
    case "stopping":
      return { status: 202, row: result.row };
    case "already":
      return { status: result.row.status === "stopped" ? 200 : 202, row: result.row };
    case "cannot-hibernate":
      throw new ApiError("VALIDATION_FAILED", "The workspace was not launched able to hibernate.", {
        fields: [{ path: "hibernate", message: "needs hibernation: true when it was created" }],
        hint: "Stop it without hibernate, or create workspaces with hibernation: true.",
      });
    case "removed":
      throw removed();
    case "conflict":
      throw new ApiError(
        "WORKSPACE_STATE_CONFLICT",
        `A ${result.row.status} workspace cannot be stopped.`,
        { hint: "Stop works on a workspace with a running instance; wait for it to be online." },
      );
    default: {
      const unreachable: never = result;
      throw new Error(`unhandled stop result ${JSON.stringify(unreachable)}`);
    }
  }
}

/** The answer of a start: 202 while starting or relaunching, 200 when already up. */
export function startAnswer(result: StartResult): { status: 200 | 202; row: WorkspaceRow } {
  switch (result.kind) {
    case "starting":
    case "relaunching":
      return { status: 202, row: result.row };
    case "already":
      return {
        status: result.row.status === "online" || result.row.status === "degraded" ? 200 : 202,
        row: result.row,
      };
    case "removed":
      throw removed();
    case "conflict":
      throw new ApiError(
        "WORKSPACE_STATE_CONFLICT",
        `A ${result.row.status} workspace cannot be started.`,
        {
          hint:
            result.row.status === "stopping"
              ? "It is still stopping: GET /workspaces/{id}/wait?status=stopped, then start it."
              : "Start works on a stopped workspace.",
        },
      );
    default: {
      const unreachable: never = result;
      throw new Error(`unhandled start result ${JSON.stringify(unreachable)}`);
    }
  }
}

export const lifecycleRoutes = newRouter();

lifecycleRoutes.openapi(
  createRoute({
    method: "post",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}/stop",
    tags: ["lifecycle"],
    summary: "Stop the instance (optionally hibernating it); the workspace keeps its disk",
    description:
      "202 while stopping; `stopped` once EC2 says so (GET …/wait?status=stopped). Idempotent: a stopped workspace answers 200.",
    security,
    request: {
      params: IdParam,
      body: {
        content: {
          "application/json": {
            schema: z
              .object({ hibernate: z.boolean().default(false) })
              .strict()
              .openapi("Stop"),
          },
        },
        required: false,
      },
    },
    responses: {
      200: json(WorkspaceBody, "Already stopped."),
      202: json(WorkspaceBody, "Stopping."),
      ...errorResponses(
        AUTH_ERRORS,
        BODY_ERRORS,
        "WORKSPACE_NOT_FOUND",
        "WORKSPACE_REMOVED",
        "WORKSPACE_STATE_CONFLICT",
        "EXTERNAL_RUNTIME",
        STORE_ERRORS,
      ),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row = await workspaceOr404(deps.db, c.req.valid("param").id);
    refuseExternal(row, "stop");
    const body = (await c.req.json().catch(() => ({}))) as { hibernate?: unknown };
    const hibernate = body.hibernate === true;
    const { status, row: after } = stopAnswer(
      await stopWorkspace(deps, row, { hibernate, reason: "user", actor: "api" }),
    );
    return c.json({ workspace: toApi(after, deps.config) }, status);
  },
);

lifecycleRoutes.openapi(
  createRoute({
    method: "post",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}/start",
    tags: ["lifecycle"],
    summary: "Start a stopped workspace (relaunched, with its plugins, if its instance is gone)",
    description:
      "202 while starting; `online` once EC2 runs it and its SSM agent is Online. Idempotent: an online workspace answers 200.",
    security,
    request: { params: IdParam },
    responses: {
      200: json(WorkspaceBody, "Already online."),
      202: json(WorkspaceBody, "Starting."),
      ...errorResponses(
        AUTH_ERRORS,
        "WORKSPACE_NOT_FOUND",
        "WORKSPACE_REMOVED",
        "WORKSPACE_STATE_CONFLICT",
        "EXTERNAL_RUNTIME",
        STORE_ERRORS,
      ),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row = await workspaceOr404(deps.db, c.req.valid("param").id);
    refuseExternal(row, "start");
    const { status, row: after } = startAnswer(await startWorkspace(deps, row, "api"));
    return c.json({ workspace: toApi(after, deps.config) }, status);
  },
);

const PatchBody = z
  .object({ name: z.string().min(1).max(200).optional(), ...IdleSettings })
  .strict()
  .openapi("PatchWorkspace");

lifecycleRoutes.openapi(
  createRoute({
    method: "patch",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}",
    tags: ["workspaces"],
    summary: "Rename a workspace or change its idle auto-stop",
    security,
    request: {
      params: IdParam,
      body: { content: { "application/json": { schema: PatchBody } }, required: true },
    },
    responses: {
      200: json(WorkspaceBody, "Updated."),
      ...errorResponses(
        AUTH_ERRORS,
        BODY_ERRORS,
        "WORKSPACE_NOT_FOUND",
        "WORKSPACE_REMOVED",
        STORE_ERRORS,
      ),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const body = c.req.valid("json");
    const row = await workspaceOr404(deps.db, c.req.valid("param").id);
    if (body.idleAction === "hibernate" && !row.hibernation) {
      throw new ApiError("VALIDATION_FAILED", "The request is not valid.", {
        fields: [
          { path: "idleAction", message: "the workspace was not launched able to hibernate" },
        ],
      });
    }
    const changes = {
      ...(body.name !== undefined && { name: body.name }),
      ...(body.idleStopSeconds !== undefined && { idleStopSeconds: body.idleStopSeconds }),
      ...(body.idleAction !== undefined && { idleAction: body.idleAction }),
    };
    if (Object.keys(changes).length === 0) {
      if (row.status === "removing" || row.status === "removed") throw removed();
      return c.json({ workspace: toApi(row, deps.config) }, 200);
    }
    const [updated] = await deps.db
      .update(workspaces)
      .set(changes)
      .where(
        sql`${workspaces.id} = ${row.id} and ${workspaces.status} not in ('removing', 'removed')`,
      )
      .returning();
    if (!updated) throw removed();
    return c.json({ workspace: toApi(updated, deps.config) }, 200);
  },
);

lifecycleRoutes.openapi(
  createRoute({
    method: "post",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}/activity",
    tags: ["lifecycle"],
    summary: "Record user activity: the workspace is in use (idle auto-stop waits)",
    security,
    request: { params: IdParam },
    responses: {
      200: json(WorkspaceBody, "Recorded."),
      ...errorResponses(AUTH_ERRORS, "WORKSPACE_NOT_FOUND", "WORKSPACE_REMOVED", STORE_ERRORS),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row = await workspaceOr404(deps.db, c.req.valid("param").id);
    const updated = await recordActivity(deps, row.id);
    if (!updated) throw removed();
    return c.json({ workspace: toApi(updated, deps.config) }, 200);
  },
);

// Fly Machines' wait: at most 60 s there; here at most 25 s, inside API Gateway's 30 s.
const MAX_WAIT_SECONDS = 25;
const ANSWER_MARGIN_MS = 1_000;

const WaitQuery = z.object({
  status: z
    .string()
    .min(1)
    .openapi({ description: "One or more statuses, comma-separated.", example: "online,failed" }),
  timeoutSeconds: z.coerce.number().int().min(0).max(MAX_WAIT_SECONDS).default(MAX_WAIT_SECONDS),
});

lifecycleRoutes.openapi(
  createRoute({
    method: "get",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}/wait",
    tags: ["lifecycle"],
    summary: "Wait until the workspace is in one of the given statuses",
    description:
      "200 with the workspace as soon as its status is one of `status`; 408 WAIT_TIMEOUT with the current status after `timeoutSeconds` (at most 25).",
    security,
    request: { params: IdParam, query: WaitQuery },
    responses: {
      200: json(WorkspaceBody, "Reached."),
      ...errorResponses(
        AUTH_ERRORS,
        "VALIDATION_FAILED",
        "WORKSPACE_NOT_FOUND",
        "WAIT_TIMEOUT",
        STORE_ERRORS,
      ),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const q = c.req.valid("query");
    const wanted = q.status.split(",").map((s) => s.trim());
    const bad = wanted.filter((s) => !(WORKSPACE_STATUSES as readonly string[]).includes(s));
    if (bad.length > 0) {
      throw new ApiError("VALIDATION_FAILED", "The request is not valid.", {
        fields: [{ path: "status", message: `unknown status: ${bad.join(", ")}` }],
      });
    }
    const id = c.req.valid("param").id;
    let row = await workspaceOr404(deps.db, id);
    // Polling with backoff, not a held connection: a Lambda container keeps no listener, and a
    // read is one indexed round trip.
    const until =
      Date.now() + Math.min(q.timeoutSeconds * 1000, remainingMs(deps.deadline) - ANSWER_MARGIN_MS);
    let delay = 200;
    while (!wanted.includes(row.status) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, until - Date.now()))));
      delay = Math.min(delay * 1.5, 1_000);
      row = (await getWorkspace(deps.db, id)) ?? row;
    }
    if (!wanted.includes(row.status as WorkspaceStatus)) {
      throw new ApiError(
        "WAIT_TIMEOUT",
        `The workspace is ${row.status}, not ${wanted.join(" or ")}, after ${q.timeoutSeconds} s.`,
        { hint: "Wait again, or read GET /workspaces/{id}/events for what happened." },
      );
    }
    return c.json({ workspace: toApi(row, deps.config) }, 200);
  },
);
