import { createRoute, z } from "@hono/zod-openapi";
import { hibernationPlan } from "../../compute/hibernation.js";
import {
  buildUserData,
  UserDataTooLargeError,
  UserDataValueError,
} from "../../compute/user-data.js";
import { type Config, isKnownRuntime } from "../../config.js";
import { WORKSPACE_STATUSES } from "../../db/schema.js";
import { createWorkspace } from "../../workspaces/create.js";
import { launchWorkspace } from "../../workspaces/launch.js";
import { toApi } from "../../workspaces/model.js";
import {
  decodeEventCursor,
  decodeWorkspaceCursor,
  getWorkspace,
  listEvents,
  listWorkspaces,
} from "../../workspaces/queries.js";
import { removeWorkspace } from "../../workspaces/remove.js";
import { mintToken, replaceTokens } from "../../workspaces/tokens.js";
import { newRouter } from "../context.js";
import { ApiError, AUTH_ERRORS, BODY_ERRORS, errorResponses, STORE_ERRORS } from "../errors.js";
import { authenticate } from "../middleware.js";
import { IdParam, json, security } from "../openapi.js";
import { WorkspaceSchema } from "../workspace-schema.js";

// Environment variable names a POSIX shell accepts; values are written to the instance's env file.
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const MAX_ENV_ENTRIES = 50;

/** An env map as the API takes it: shell names for keys, single-line values, 50 at most. */
export const EnvSchema = z
  .record(
    z.string().regex(ENV_KEY, "env keys must match [A-Za-z_][A-Za-z0-9_]*"),
    z
      .string()
      .max(4096)
      // One line each: the instance's env file holds KEY=VALUE lines.
      .regex(/^[^\0\r\n]*$/, "must be a single line without NUL"),
  )
  .refine((e) => Object.keys(e).length <= MAX_ENV_ENTRIES, `at most ${MAX_ENV_ENTRIES} entries`);

/** Idle auto-stop, settable on create and with PATCH. */
export const IdleSettings = {
  idleStopSeconds: z
    .number()
    .int()
    .min(0)
    .max(30 * 24 * 3600)
    .optional()
    .openapi({ description: "Stop after this many seconds without activity; 0: never." }),
  idleAction: z.enum(["stop", "hibernate"]).optional(),
};

const CreateBody = z
  .object({
    name: z
      .string()
      .trim()
      .min(1)
      .max(128)
      .regex(/^[^\p{Cc}]*$/u, "must not contain control characters"),
    runtime: z.string().min(1).max(64).default("langgraph"),
    tier: z.number().int().min(1).max(99).default(1),
    env: EnvSchema.default({}),
    hibernation: z.boolean().default(false).openapi({
      description:
        "Launch able to hibernate (stop with its memory kept). The tier's instance type must support it.",
    }),
    ...IdleSettings,
  })
  .strict()
  .openapi("CreateWorkspace");

/** `?limit=&cursor=` of every list. */
export const PageQuery = {
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(200).optional(),
};

const Token = z.string().openapi({ description: "Shown once; only its hash is stored." });

/** The `cursor` query parameter; one this API did not issue (or out of range) → 400, never 500. */
export function cursorFrom<C>(
  raw: string | undefined,
  decode: (raw: string) => C | null,
): C | undefined {
  if (raw === undefined) return undefined;
  const c = decode(raw);
  if (!c) {
    throw new ApiError("VALIDATION_FAILED", "The cursor is not valid.", {
      fields: [{ path: "cursor", message: "not a cursor this API issued" }],
    });
  }
  return c;
}

export const workspaceRoutes = newRouter();

workspaceRoutes.openapi(
  createRoute({
    method: "post",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces",
    tags: ["workspaces"],
    summary: "Create a workspace",
    security,
    request: {
      headers: z.object({ "idempotency-key": z.string().min(1).max(255).optional() }),
      body: { content: { "application/json": { schema: CreateBody } }, required: true },
    },
    responses: {
      201: json(
        z.object({ workspace: WorkspaceSchema, token: Token.optional() }),
        "Created; the workspace says what became of its launch: `provisioning` with its " +
          "instance, `provisioning` with instanceId null (the launch failed transiently: the " +
          "sweep re-drives it), `failed` (EC2 refused the launch; lastError says why), or " +
          "`removing`/`removed` (a DELETE won meanwhile; no instance is left running). External " +
          "workspaces carry their token.",
      ),
      200: json(z.object({ workspace: WorkspaceSchema }), "Replayed by Idempotency-Key."),
      ...errorResponses(AUTH_ERRORS, BODY_ERRORS, "IDEMPOTENCY_KEY_REUSED", STORE_ERRORS),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const body = c.req.valid("json");
    const key = c.req.valid("header")["idempotency-key"];
    await refuseProtoEnvKey(c.req);
    if (!isKnownRuntime(deps.config, body.runtime)) {
      throw new ApiError("VALIDATION_FAILED", `Unknown runtime "${body.runtime}".`, {
        fields: [{ path: "runtime", message: "not a configured runtime" }],
        hint: `Known runtimes: external, ${Object.keys(deps.config.runtimeImages).join(", ")}.`,
      });
    }
    if (!Object.hasOwn(deps.config.tierInstanceTypes, String(body.tier))) {
      throw new ApiError("VALIDATION_FAILED", `Unknown tier ${body.tier}.`, {
        fields: [{ path: "tier", message: "not a configured tier" }],
      });
    }
    if (body.runtime !== "external") assertUserDataFits(deps.config, body);
    assertLifecycleFits(deps.config, body);
    const result = await createWorkspace(deps, {
      ...body,
      ...(key !== undefined && { idempotencyKey: key }),
    });
    switch (result.kind) {
      case "created": {
        if (result.row.runtime === "external") {
          return c.json(
            { workspace: toApi(result.row, deps.config), token: result.token.token },
            201,
          );
        }
        // A transient failure still answers 201 with instanceId null: the sweep re-drives it.
        const launched = await launchWorkspace(deps, result.row, "api");
        return c.json({ workspace: toApi(launched.row, deps.config) }, 201);
      }
      case "replayed":
        return c.json({ workspace: toApi(result.row, deps.config) }, 200);
      case "key_reused":
        throw new ApiError(
          "IDEMPOTENCY_KEY_REUSED",
          "This Idempotency-Key was used for a different request.",
        );
      default: {
        const unreachable: never = result;
        throw new Error(`unhandled ${JSON.stringify(unreachable)}`);
      }
    }
  },
);

workspaceRoutes.openapi(
  createRoute({
    method: "get",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces",
    tags: ["workspaces"],
    summary: "List workspaces, newest first",
    security,
    request: { query: z.object({ status: z.enum(WORKSPACE_STATUSES).optional(), ...PageQuery }) },
    responses: {
      200: json(
        z.object({ workspaces: z.array(WorkspaceSchema), nextCursor: z.string().nullable() }),
        "A page of workspaces.",
      ),
      ...errorResponses(AUTH_ERRORS, "VALIDATION_FAILED", STORE_ERRORS),
    },
  }),
  async (c) => {
    const q = c.req.valid("query");
    const cursor = cursorFrom(q.cursor, decodeWorkspaceCursor);
    const page = await listWorkspaces(c.get("deps").db, {
      limit: q.limit,
      ...(q.status && { status: q.status }),
      ...(cursor && { cursor }),
    });
    return c.json(
      {
        workspaces: page.items.map((r) => toApi(r, c.get("deps").config)),
        nextCursor: page.nextCursor,
      },
      200,
    );
  },
);

/**
 * Refuses, before anything is written, what cannot hibernate: an external workspace (no
 * instance), a tier whose instance type EC2 cannot hibernate, and an idle action of
 * `hibernate` for a workspace not launched able to.
 */
function assertLifecycleFits(
  config: Config,
  body: { runtime: string; tier: number; hibernation: boolean; idleAction?: string | undefined },
): void {
  const fields: { path: string; message: string }[] = [];
  if (body.hibernation && body.runtime === "external") {
    fields.push({ path: "hibernation", message: "an external workspace has no instance" });
  } else if (body.hibernation) {
    const plan = hibernationPlan(config.tierInstanceTypes[String(body.tier)] ?? "");
    if (plan.kind === "unsupported") fields.push({ path: "hibernation", message: plan.reason });
  }
  if (body.idleAction === "hibernate" && !body.hibernation) {
    fields.push({ path: "idleAction", message: "hibernate needs hibernation: true at creation" });
  }
  if (fields.length > 0) {
    throw new ApiError("VALIDATION_FAILED", "The request is not valid.", { fields });
  }
}

/**
 * zod's record silently drops a `__proto__` key (it matches the key pattern); refuse it rather
 * than act without a variable the caller asked for. Reads the body Hono has cached.
 */
export async function refuseProtoEnvKey(req: { json(): Promise<unknown> }): Promise<void> {
  const raw = (await req.json()) as { env?: unknown };
  if (raw.env !== null && typeof raw.env === "object" && Object.hasOwn(raw.env, "__proto__")) {
    throw new ApiError("VALIDATION_FAILED", "The request is not valid.", {
      fields: [{ path: "env.__proto__", message: "not an allowed env key" }],
    });
  }
}

/**
 * Refuses, before anything is written, an env the instance's user-data cannot carry: over EC2's
 * 16 KB, or values it cannot hold. Built with placeholders of the real lengths (a uuid, a token).
 */
function assertUserDataFits(
  config: Config,
  body: { runtime: string; env: Record<string, string> },
) {
  try {
    buildUserData({
      workspaceId: "00000000-0000-0000-0000-000000000000",
      platformUrl: config.platformUrl ?? "",
      token: "x".repeat(43),
      image: config.runtimeImages[body.runtime] ?? "",
      env: body.env,
    });
  } catch (err) {
    if (err instanceof UserDataTooLargeError || err instanceof UserDataValueError) {
      throw new ApiError("VALIDATION_FAILED", err.message, {
        fields: [{ path: "env", message: err.message }],
      });
    }
    throw err;
  }
}

/** Loads the workspace a path names, or answers 404 (malformed ids included). */
export async function workspaceOr404(deps: Parameters<typeof getWorkspace>[0], id: string) {
  const row = await getWorkspace(deps, id);
  if (!row) throw new ApiError("WORKSPACE_NOT_FOUND", "No such workspace.");
  return row;
}

workspaceRoutes.openapi(
  createRoute({
    method: "get",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}",
    tags: ["workspaces"],
    summary: "Get a workspace",
    security,
    request: { params: IdParam },
    responses: {
      200: json(z.object({ workspace: WorkspaceSchema }), "The workspace."),
      ...errorResponses(AUTH_ERRORS, "WORKSPACE_NOT_FOUND", STORE_ERRORS),
    },
  }),
  async (c) => {
    const row = await workspaceOr404(c.get("deps").db, c.req.valid("param").id);
    return c.json({ workspace: toApi(row, c.get("deps").config) }, 200);
  },
);

workspaceRoutes.openapi(
  createRoute({
    method: "delete",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}",
    tags: ["workspaces"],
    summary: "Remove a workspace (revokes tokens, terminates its instance)",
    security,
    request: { params: IdParam },
    responses: {
      200: json(
        z.object({ workspace: WorkspaceSchema }),
        "Removed: its instance terminated (or gone), its tokens revoked.",
      ),
      202: json(
        z.object({ workspace: WorkspaceSchema }),
        "Removing: termination failed transiently; the sweep finishes it.",
      ),
      ...errorResponses(AUTH_ERRORS, "WORKSPACE_NOT_FOUND", STORE_ERRORS),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row = await workspaceOr404(deps.db, c.req.valid("param").id);
    const result = await removeWorkspace(deps, row);
    return c.json({ workspace: toApi(result.row, deps.config) }, result.done ? 200 : 202);
  },
);

const EventSchema = z
  .object({
    from: z.enum(WORKSPACE_STATUSES).nullable(),
    to: z.enum(WORKSPACE_STATUSES),
    reason: z.string(),
    actor: z.string(),
    at: z.string(),
  })
  .openapi("WorkspaceEvent");

workspaceRoutes.openapi(
  createRoute({
    method: "get",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}/events",
    tags: ["workspaces"],
    summary: "The workspace's status history, oldest first",
    security,
    request: { params: IdParam, query: z.object(PageQuery) },
    responses: {
      200: json(
        z.object({ events: z.array(EventSchema), nextCursor: z.string().nullable() }),
        "A page of events.",
      ),
      ...errorResponses(AUTH_ERRORS, "VALIDATION_FAILED", "WORKSPACE_NOT_FOUND", STORE_ERRORS),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row = await workspaceOr404(deps.db, c.req.valid("param").id);
    const q = c.req.valid("query");
    const cursor = cursorFrom(q.cursor, decodeEventCursor);
    const page = await listEvents(deps.db, row.id, { limit: q.limit, ...(cursor && { cursor }) });
    return c.json(
      {
        events: page.items.map((e) => ({
          from: e.from,
          to: e.to,
          reason: e.reason,
          actor: e.actor,
          at: e.at.toISOString(),
        })),
        nextCursor: page.nextCursor,
      },
      200,
    );
  },
);

workspaceRoutes.openapi(
  createRoute({
    method: "post",
    middleware: [authenticate("admin")] as const,
    path: "/workspaces/{id}/tokens",
    tags: ["workspaces"],
    summary: "Mint a new workspace token (revokes the others)",
    security,
    request: { params: IdParam },
    responses: {
      201: json(z.object({ token: Token }), "The new token, shown once."),
      ...errorResponses(AUTH_ERRORS, "WORKSPACE_NOT_FOUND", "WORKSPACE_REMOVED", STORE_ERRORS),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row = await workspaceOr404(deps.db, c.req.valid("param").id);
    if (row.status === "removing" || row.status === "removed") {
      throw new ApiError("WORKSPACE_REMOVED", "The workspace is removed.");
    }
    const token = mintToken();
    // The same statement refuses a workspace a racing DELETE has moved to removing.
    if (!(await replaceTokens(deps.db, row.id, token))) {
      throw new ApiError("WORKSPACE_REMOVED", "The workspace is removed.");
    }
    return c.json({ token: token.token }, 201);
  },
);
