import { z } from "@hono/zod-openapi";
import type { Deps } from "../deps.js";
import { startWorkspace } from "../workspaces/lifecycle.js";
import { toApi, type WorkspaceRow } from "../workspaces/model.js";
import { ApiError } from "./errors.js";
import { startAnswer } from "./routes/lifecycle.js";
import { WorkspaceSchema } from "./workspace-schema.js";

/** `?wake=true` on the routes that need a running instance. */
export const WakeQuery = z.object({
  wake: z
    .enum(["true", "false"])
    .optional()
    .transform((v) => v === "true")
    .openapi({ description: "A stopped workspace is started instead of refused (202)." }),
});

/** The 202 of a request that woke a stopped workspace instead of doing its work. */
export const WakingBody = z.object({
  status: z.literal("waking"),
  workspace: WorkspaceSchema,
  next: z.string().openapi({ description: "What to do once it is online." }),
});

/**
 * Work that needs a running instance (a plugin operation, a command). A stopped (or stopping)
 * workspace answers 409 WORKSPACE_STOPPED with the way to start it; with `?wake=true` it is
 * started and the answer is 202 `waking` with what to do next. A starting one is refused the
 * same way (it is not up yet). Null: the workspace is not stopped; go on.
 */
export async function requireAwake(
  deps: Deps,
  row: WorkspaceRow,
  wake: boolean,
  what: string,
): Promise<z.infer<typeof WakingBody> | null> {
  if (row.status !== "stopped" && row.status !== "stopping" && row.status !== "starting") {
    return null;
  }
  const next = `GET /workspaces/${row.id}/wait?status=online, then repeat the ${what}`;
  if (!wake || row.status === "stopping") {
    throw new ApiError(
      "WORKSPACE_STOPPED",
      `The workspace is ${row.status}; its instance cannot take a command.`,
      {
        hint:
          row.status === "stopping"
            ? `Wait for it to stop, then POST /workspaces/${row.id}/start`
            : wake
              ? next
              : `POST /workspaces/${row.id}/start (or repeat with ?wake=true)`,
      },
    );
  }
  const { row: after } = startAnswer(await startWorkspace(deps, row, "api"));
  return { status: "waking", workspace: toApi(after, deps.config), next };
}
