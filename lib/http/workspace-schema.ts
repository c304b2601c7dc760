import { z } from "@hono/zod-openapi";
import { WORKSPACE_STATUSES } from "../db/schema.js";
import type { Workspace } from "../workspaces/model.js";

/**
 * The OpenAPI schema of the domain's {@link Workspace} view. It lives here, beside the routes,
 * because only the HTTP layer needs the OpenAPI helpers; the domain keeps the plain type.
 */
export const WorkspaceSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    runtime: z.string(),
    tier: z.number().int(),
    status: z.enum(WORKSPACE_STATUSES),
    instanceId: z.string().nullable(),
    generation: z.number().int(),
    launchedAt: z.string().nullable(),
    lastHeartbeatAt: z.string().nullable(),
    lastError: z.string().nullable(),
    envKeys: z.array(z.string()),
    hibernation: z.boolean().openapi({ description: "Launched able to hibernate." }),
    stoppedReason: z.enum(["user", "idle"]).nullable(),
    hibernated: z.boolean().openapi({
      description: "The last stop was a hibernation (memory kept), as EC2 reported it.",
    }),
    idleStopSeconds: z.number().int().openapi({
      description: "Seconds without activity before the sweep stops it; 0: never.",
    }),
    idleAction: z.enum(["stop", "hibernate"]),
    lastActivityAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Workspace");

// The schema and the domain's type must describe the same object: either drifting from the
// other fails the build here, not a client at run time.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaMatchesDomain: Same<z.infer<typeof WorkspaceSchema>, Workspace> = true;
void schemaMatchesDomain;
