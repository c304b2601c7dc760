import { createRoute, z } from "@hono/zod-openapi";
import { cancelWorkspaceCommand } from "../../commands/cancel.js";
import { commandOutput, OUTPUT_PRESIGN_SECONDS } from "../../commands/output.js";
import { buildCommandProgram, type CommandSpec } from "../../commands/program.js";
import {
  decodeCommandCursor,
  getCommand,
  listCommands,
  type WorkspaceCommandRow,
} from "../../commands/records.js";
import { type RunOutcome, runWorkspaceCommand } from "../../commands/run.js";
import { settleCommand } from "../../commands/settle.js";
import { describeAwsError } from "../../compute/errors.js";
import type { Db } from "../../db/client.js";
import { unhandled } from "../../unhandled.js";
import { isExternal } from "../../workspaces/model.js";
import {
  CommandAccepted,
  CommandRecordSchema,
  CommandSchema,
  commandRecordView,
  commandView,
  RunCommandBody,
} from "../command-views.js";
import type { Caller } from "../context.js";
import { newRouter } from "../context.js";
import {
  ApiError,
  AUTH_ERRORS,
  BODY_ERRORS,
  errorResponses,
  STORE_ERRORS,
  TARGET_ERRORS,
} from "../errors.js";
import { authenticate } from "../middleware.js";
import { IdParam, json, security } from "../openapi.js";
import { isSendPathFailure, sendPathError } from "../target-errors.js";
import { requireAwake, WakeQuery, WakingBody } from "../wake.js";
import { cursorFrom, PageQuery, refuseProtoEnvKey, workspaceOr404 } from "./workspaces.js";

const CommandParams = IdParam.extend({
  commandId: z.string().openapi({ param: { name: "commandId", in: "path" } }),
});

const admin = [authenticate("admin")];

/** Who the audit trail names: the admin, or a workspace token by its prefix (never the token). */
const requestedBy = (caller: Caller) =>
  caller.kind === "admin" ? "admin" : `token:${caller.tokenPrefix}`;

/** The command a path names, on the workspace it names: 404 for either. */
async function commandOr404(db: Db, params: { id: string; commandId: string }) {
  const workspace = await workspaceOr404(db, params.id);
  const row = await getCommand(db, workspace.id, params.commandId);
  if (!row) throw new ApiError("COMMAND_NOT_FOUND", "No such command on this workspace.");
  return row;
}

/** What every route about one command may answer besides its own codes. */
const COMMAND_ROUTE_ERRORS = [
  ...AUTH_ERRORS,
  "WORKSPACE_NOT_FOUND",
  "COMMAND_NOT_FOUND",
  "UPSTREAM_UNAVAILABLE",
  ...STORE_ERRORS,
] as const;

/** Validates the body into a spec and its program: every bad value → 400 naming its field. */
function programOf(body: RunCommandBody) {
  const spec: CommandSpec = {
    what:
      body.argv !== undefined
        ? { kind: "argv", argv: body.argv }
        : { kind: "script", script: body.script ?? "" },
    env: body.env,
    cwd: body.cwd,
  };
  const built = buildCommandProgram(spec);
  if (built.kind === "invalid") {
    throw new ApiError("VALIDATION_FAILED", "The command cannot be sent as given.", {
      fields: built.problems,
    });
  }
  return { spec, program: built.program };
}

/** The one outcome → answer table of running a command. */
function runAnswerOrError(outcome: RunOutcome) {
  if (isSendPathFailure(outcome)) throw sendPathError(outcome);
  switch (outcome.kind) {
    case "finished":
      return { status: 200 as const, body: commandView(outcome) };
    case "accepted":
      return {
        status: 202 as const,
        body: { commandId: outcome.row.id, status: outcome.row.status },
      };
    case "external":
      throw new ApiError(
        "EXTERNAL_RUNTIME",
        "An external workspace has no instance here to run a command on.",
      );
    case "workspace-removed":
      throw new ApiError("WORKSPACE_REMOVED", "The workspace is removed.");
    case "workspace-stopped":
      throw new ApiError(
        "WORKSPACE_STOPPED",
        `The workspace is ${outcome.status}; its instance cannot take a command.`,
        { hint: "GET /workspaces/{id}/wait?status=online, then repeat the command." },
      );
    case "moved-on":
      throw new ApiError(
        "WORKSPACE_STATE_CONFLICT",
        "The workspace was removed or restarted while the command was being recorded; nothing was sent.",
        { hint: "Retry: the running check looks at its current instance." },
      );
    case "key-reused":
      throw new ApiError(
        "IDEMPOTENCY_KEY_REUSED",
        "This Idempotency-Key was used for a different command on this workspace.",
      );
    case "out-of-time":
      throw new ApiError(
        "UPSTREAM_UNAVAILABLE",
        "The request ran out of time before the command could be sent; nothing was sent.",
        { hint: "Retry shortly." },
      );
    default:
      return unhandled("run outcome", outcome);
  }
}

const ssmUnavailable = (err: unknown) =>
  new ApiError(
    "UPSTREAM_UNAVAILABLE",
    `SSM did not answer about the command (${describeAwsError(err).code}).`,
    { hint: "Retry shortly." },
  );

export const commandRoutes = newRouter();

commandRoutes.openapi(
  createRoute({
    method: "post",
    middleware: admin,
    path: "/workspaces/{id}/commands",
    tags: ["commands"],
    summary: "Run a command on the workspace's instance (SSM Run Command)",
    description:
      "Order: body (400, nothing sent) → workspace (404/409), external (422) → Idempotency-Key " +
      "replay → running check (503) → the audit record → SSM ping (503) and SendCommand → wait " +
      "up to waitSeconds: 200 with the result, else 202. A retried request with the same key " +
      "and body answers for the same command; it never runs twice.",
    security,
    request: {
      params: IdParam,
      query: WakeQuery,
      headers: z.object({ "idempotency-key": z.string().min(1).max(255).optional() }),
      body: { content: { "application/json": { schema: RunCommandBody } }, required: true },
    },
    responses: {
      200: json(CommandSchema, "Finished within waitSeconds."),
      202: json(
        z.union([CommandAccepted, WakingBody]),
        "Sent and not finished yet (GET …/commands/{commandId}), or waking a stopped workspace (?wake=true): nothing was sent.",
      ),
      ...errorResponses(
        AUTH_ERRORS,
        BODY_ERRORS,
        "WORKSPACE_NOT_FOUND",
        "WORKSPACE_REMOVED",
        "WORKSPACE_STOPPED",
        "WORKSPACE_STATE_CONFLICT",
        "IDEMPOTENCY_KEY_REUSED",
        "EXTERNAL_RUNTIME",
        TARGET_ERRORS,
        "UPSTREAM_UNAVAILABLE",
        STORE_ERRORS,
      ),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const body = c.req.valid("json");
    await refuseProtoEnvKey(c.req);
    const { spec, program } = programOf(body);
    const workspace = await workspaceOr404(deps.db, c.req.valid("param").id);
    if (
      workspace.status !== "removing" &&
      workspace.status !== "removed" &&
      !isExternal(workspace)
    ) {
      const waking = await requireAwake(deps, workspace, c.req.valid("query").wake, "command");
      if (waking) return c.json(waking, 202);
    }
    const outcome = await runWorkspaceCommand(deps, {
      workspace,
      spec,
      program,
      timeoutSeconds: body.timeoutSeconds,
      waitSeconds: body.waitSeconds,
      requestedBy: requestedBy(c.get("caller")),
      idempotencyKey: c.req.valid("header")["idempotency-key"],
    });
    const answer = runAnswerOrError(outcome);
    return answer.status === 200 ? c.json(answer.body, 200) : c.json(answer.body, 202);
  },
);

commandRoutes.openapi(
  createRoute({
    method: "get",
    middleware: admin,
    path: "/workspaces/{id}/commands",
    tags: ["commands"],
    summary: "The audit trail: the workspace's commands, newest first",
    security,
    request: { params: IdParam, query: z.object(PageQuery) },
    responses: {
      200: json(
        z.object({ commands: z.array(CommandRecordSchema), nextCursor: z.string().nullable() }),
        "A page of commands.",
      ),
      ...errorResponses(AUTH_ERRORS, "VALIDATION_FAILED", "WORKSPACE_NOT_FOUND", STORE_ERRORS),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const workspace = await workspaceOr404(deps.db, c.req.valid("param").id);
    const q = c.req.valid("query");
    const cursor = cursorFrom(q.cursor, decodeCommandCursor);
    const page = await listCommands(deps.db, workspace.id, {
      limit: q.limit,
      ...(cursor && { cursor }),
    });
    return c.json(
      { commands: page.items.map(commandRecordView), nextCursor: page.nextCursor },
      200,
    );
  },
);

commandRoutes.openapi(
  createRoute({
    method: "get",
    middleware: admin,
    path: "/workspaces/{id}/commands/{commandId}",
    tags: ["commands"],
    summary: "One command: its status, exit code and the output SSM keeps inline",
    security,
    request: { params: CommandParams },
    responses: {
      200: json(CommandSchema, "The command, as SSM reports it now."),
      ...errorResponses(COMMAND_ROUTE_ERRORS),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row = await commandOr404(deps.db, c.req.valid("param"));
    try {
      return c.json(commandView(await settleCommand(deps, row)), 200);
    } catch (err) {
      throw ssmUnavailable(err);
    }
  },
);

commandRoutes.openapi(
  createRoute({
    method: "post",
    middleware: admin,
    path: "/workspaces/{id}/commands/{commandId}/cancel",
    tags: ["commands"],
    summary: "Cancel a command (CancelCommand); a finished one is answered as it is",
    security,
    request: { params: CommandParams },
    responses: {
      200: json(CommandSchema, "It has ended: cancelled now, or finished before."),
      202: json(CommandAccepted, "Asked to stop; GET …/commands/{commandId} shows when it has."),
      ...errorResponses(COMMAND_ROUTE_ERRORS, "COMMAND_UNCONFIRMED"),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row = await commandOr404(deps.db, c.req.valid("param"));
    const outcome = await cancelWorkspaceCommand(deps, row);
    switch (outcome.kind) {
      case "finished":
        return c.json(commandView(outcome), 200);
      case "cancelling":
        return c.json({ commandId: outcome.row.id, status: outcome.row.status }, 202);
      case "unconfirmed":
        throw new ApiError(
          "COMMAND_UNCONFIRMED",
          "The command's send is not confirmed yet (SSM's answer was lost); it cannot be named to SSM.",
          { hint: "The sweep confirms it within a few minutes; cancel again then." },
        );
      case "cancel-failed":
        throw new ApiError(
          "UPSTREAM_UNAVAILABLE",
          `SSM did not take the cancel (${outcome.error.code}).`,
          { hint: "Retry shortly." },
        );
      default:
        return unhandled("cancel outcome", outcome);
    }
  },
);

commandRoutes.openapi(
  createRoute({
    method: "get",
    middleware: admin,
    path: "/workspaces/{id}/commands/{commandId}/output",
    tags: ["commands"],
    summary: "A finished command's whole stdout or stderr",
    description:
      "Up to DOWNLOAD_INLINE_MAX_BYTES inline; larger output answers 302 to a presigned URL " +
      `of the staging bucket (valid ${OUTPUT_PRESIGN_SECONDS} s). 409 while the command runs: ` +
      "the instance uploads its output when it ends.",
    security,
    request: {
      params: CommandParams,
      query: z.object({ stream: z.enum(["stdout", "stderr"]).default("stdout") }),
    },
    responses: {
      200: {
        description: "The stream's bytes.",
        content: { "text/plain": { schema: z.string() } },
      },
      302: {
        description: "Too large to answer inline: a presigned S3 URL.",
        headers: { Location: { description: "The presigned URL.", schema: { type: "string" } } },
      },
      ...errorResponses(
        COMMAND_ROUTE_ERRORS,
        "VALIDATION_FAILED",
        "COMMAND_RUNNING",
        "COMMAND_OUTPUT_MISSING",
      ),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const row: WorkspaceCommandRow = await commandOr404(deps.db, c.req.valid("param"));
    const outcome = await commandOutput(deps, row, c.req.valid("query").stream).catch((err) => {
      throw ssmUnavailable(err);
    });
    switch (outcome.kind) {
      case "inline":
        return c.body(new Uint8Array(outcome.body), 200, {
          "Content-Type": "text/plain; charset=utf-8",
          "X-Content-Type-Options": "nosniff",
          "Cache-Control": "no-store",
        });
      case "redirect":
        return c.body(null, 302, { Location: outcome.url, "Cache-Control": "no-store" });
      case "not-finished":
        throw new ApiError(
          "COMMAND_RUNNING",
          `The command is ${outcome.row.status}; its output is uploaded when it ends.`,
          { hint: "GET …/commands/{commandId} shows when it has finished." },
        );
      case "missing":
        throw new ApiError(
          "COMMAND_OUTPUT_MISSING",
          "The bucket holds no copy of this output: it expired, or the instance could not upload it.",
          { hint: "GET …/commands/{commandId} shows the first 24,000 characters SSM keeps." },
        );
      case "failed":
        if (!outcome.transient)
          deps.log.error("command output read failed", { error: outcome.error });
        throw new ApiError(
          outcome.transient ? "UPSTREAM_UNAVAILABLE" : "INTERNAL",
          `Could not read the output from the staging bucket (${outcome.error.code}).`,
          outcome.transient ? { hint: "Retry shortly." } : {},
        );
      default:
        return unhandled("output outcome", outcome);
    }
  },
);
