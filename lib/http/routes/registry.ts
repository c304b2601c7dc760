import { createRoute, z } from "@hono/zod-openapi";
import { WORKSPACE_STATUSES } from "../../db/schema.js";
import { heartbeat, registerAgent } from "../../workspaces/registry.js";
import { newRouter } from "../context.js";
import { ApiError, AUTH_ERRORS, errorResponses, STORE_ERRORS } from "../errors.js";
import { authenticate } from "../middleware.js";
import { security } from "../openapi.js";

const StatusBody = z.object({ status: z.enum(WORKSPACE_STATUSES) }).openapi("AgentStatus");

const BeatBody = z
  .object({
    activity: z.enum(["busy", "idle"]).optional().openapi({
      description:
        "busy: the agent is doing real work (idle auto-stop waits); idle or absent: alive only.",
    }),
  })
  .strict()
  .openapi("AgentBeat");

export const registryRoutes = newRouter();

for (const [path, summary, verb] of [
  ["/registry/register", "An agent announces itself; the workspace comes online", registerAgent],
  [
    "/registry/heartbeat",
    "An agent's heartbeat; an offline workspace comes back online",
    heartbeat,
  ],
] as const) {
  registryRoutes.openapi(
    createRoute({
      method: "post",
      middleware: [authenticate("workspace")] as const,
      path,
      tags: ["registry"],
      summary,
      description: "Authenticated with the workspace's own token; the workspace is the token's.",
      security,
      request: {
        body: { content: { "application/json": { schema: BeatBody } }, required: false },
      },
      responses: {
        200: {
          description: "The workspace's status.",
          content: { "application/json": { schema: StatusBody } },
        },
        ...errorResponses(AUTH_ERRORS, "VALIDATION_FAILED", "WORKSPACE_NOT_FOUND", STORE_ERRORS),
      },
    }),
    async (c) => {
      const caller = c.get("caller");
      if (caller.kind !== "workspace")
        throw new ApiError("FORBIDDEN", "A workspace token is required.");
      // The body is optional: an agent that sends none (or no JSON) is alive, not busy.
      const body = c.req.header("content-type")?.includes("json")
        ? (c.req.valid("json") as { activity?: string } | undefined)
        : undefined;
      const result = await verb(c.get("deps"), caller.workspaceId, {
        busy: body?.activity === "busy",
      });
      if (result.kind === "not_found") {
        throw new ApiError("WORKSPACE_NOT_FOUND", "The token's workspace no longer exists.");
      }
      return c.json({ status: result.status }, 200);
    },
  );
}
