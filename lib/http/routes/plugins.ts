import { createRoute, z } from "@hono/zod-openapi";
import type { Config } from "../../config.js";
import { PLUGIN_STATES } from "../../db/schema.js";
import type { Log } from "../../deps.js";
import { getAllowlist, replaceAllowlist } from "../../plugins/allowlist.js";
import { downloadHint, isExternalRuntime } from "../../plugins/guard.js";
import { isValidPluginName, pluginNameProblem } from "../../plugins/names.js";
import { listWorkspacePlugins, type WorkspacePluginRow } from "../../plugins/records.js";
import {
  defaultSourceRegistry,
  type PluginSource,
  type SourceParseFailure,
  type SourceRegistry,
} from "../../plugins/sources.js";
import type { StageFailure } from "../../plugins/staging.js";
import { uninstallPlugin } from "../../plugins/uninstall.js";
import type { WorkspaceRow } from "../../workspaces/model.js";
import { newRouter } from "../context.js";
import {
  ApiError,
  AUTH_ERRORS,
  BODY_ERRORS,
  type ErrorCode,
  errorResponses,
  STORE_ERRORS,
  TARGET_ERRORS,
} from "../errors.js";
import { assertOwnWorkspace, authenticate } from "../middleware.js";
import { pluginDownload, pluginInstall, pluginRegistry } from "../on-demand.js";
import { IdParam, json, security } from "../openapi.js";
import { sendError, targetError, unreachableError } from "../target-errors.js";
import { requireAwake, WakeQuery, WakingBody } from "../wake.js";
import { workspaceOr404 } from "./workspaces.js";

// Names are checked by hand, not by zod, so a bad one answers INVALID_PLUGIN_NAME (SPEC §11).
const NameParams = IdParam.extend({
  name: z.string().openapi({ param: { name: "name", in: "path" }, example: "code-review" }),
});

// The codes a verb's failures map to, listed once for the routes' OpenAPI declarations. Built
// from records over the failure types, so a failure code added there without being declared here
// breaks the build.
const codesOf = <C extends ErrorCode>(record: Record<C, true>) => Object.keys(record) as C[];
const SOURCE_ERRORS = codesOf<SourceParseFailure["code"]>({
  UNKNOWN_SOURCE_SCHEME: true,
  INVALID_PLUGIN_NAME: true,
  UNPINNED_SOURCE: true,
  VALIDATION_FAILED: true,
});
const STAGE_ERRORS = codesOf<StageFailure["code"]>({
  PLUGIN_NOT_FOUND: true,
  SOURCE_FETCH_FAILED: true,
  SOURCE_FETCH_TIMEOUT: true,
  PLUGIN_TOO_LARGE: true,
  INVALID_ARCHIVE: true,
  INVALID_MANIFEST: true,
  INTEGRITY_MISMATCH: true,
  PLUGIN_NAME_MISMATCH: true,
});

const RegistryEntrySchema = z
  .object({
    name: z.string(),
    version: z.string(),
    description: z.string(),
    author: z.string(),
    tags: z.array(z.string()),
    skills: z.array(z.string()),
    runtimes: z.array(z.string()).openapi({ description: "Empty: any runtime." }),
  })
  .openapi("RegistryPlugin");

const AllowlistSchema = z
  .object({
    names: z.array(z.string()).max(1000).openapi({ description: "Empty: every plugin allowed." }),
  })
  .strict()
  .openapi("PluginAllowlist");

const WorkspacePluginSchema = z
  .object({
    name: z.string(),
    version: z.string(),
    source: z.string(),
    digest: z.string(),
    state: z.enum(PLUGIN_STATES),
    commandId: z.string().nullable(),
    error: z.string().nullable(),
    updatedAt: z.string(),
  })
  .openapi("WorkspacePlugin");

const InstallBody = z
  .object({
    source: z.string().min(1).max(1024).openapi({
      example: "local://code-review",
      description: "local://NAME, NAME or github://OWNER/REPO#REF",
    }),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, "must be 64 hex digits")
      .optional()
      .openapi({ description: "Expected canonical digest of the plugin's files." }),
  })
  .strict()
  .openapi("InstallPlugin");

const pluginHeaders = {
  "X-Plugin-Name": { description: "The plugin's name.", schema: { type: "string" as const } },
  "X-Plugin-Version": { description: "The plugin's version.", schema: { type: "string" as const } },
  "X-Plugin-Source": { description: "The canonical source.", schema: { type: "string" as const } },
  "X-Plugin-Digest": {
    description: "Canonical digest: SHA-256 over the sorted (path, NUL, length, NUL, content).",
    schema: { type: "string" as const },
  },
};

function requireName(name: string): void {
  if (!isValidPluginName(name)) {
    throw new ApiError(
      "INVALID_PLUGIN_NAME",
      `Invalid plugin name: it ${pluginNameProblem(name)}.`,
      {
        fields: [{ path: "name", message: "must match ^[a-z0-9][a-z0-9._-]{0,127}$" }],
      },
    );
  }
}

function requireNotRemoved(row: WorkspaceRow): void {
  if (row.status === "removing" || row.status === "removed") {
    throw new ApiError("WORKSPACE_REMOVED", "The workspace is removed.");
  }
}

function externalRuntime(workspaceId: string, name: string): ApiError {
  return new ApiError(
    "EXTERNAL_RUNTIME",
    "An external workspace has no instance to install into; its agent pulls plugins itself.",
    { hint: downloadHint(workspaceId, name) },
  );
}

function parseSource(sources: SourceRegistry, raw: string, config: Config): PluginSource {
  const parsed = sources.parse(raw, config);
  if (parsed.kind === "parsed") return parsed.source;
  throw new ApiError(parsed.code, parsed.message, {
    fields: [{ path: "source", message: parsed.message }],
  });
}

function stageError(failure: StageFailure): ApiError {
  return new ApiError(failure.code, failure.message);
}

function uploadError(
  deps: { log: Log },
  failure: { transient: boolean; error: { code: string; message: string } },
): ApiError {
  // A transient S3 error is worth a retry; any other (AccessDenied, NoSuchBucket) is this
  // deployment's misconfiguration, not the caller's problem, and the operator must see it.
  if (!failure.transient) deps.log.error("staging bucket put failed", { error: failure.error });
  return new ApiError(
    failure.transient ? "UPSTREAM_UNAVAILABLE" : "INTERNAL",
    `Could not stage the archive in the staging bucket (${failure.error.code}).`,
    failure.transient ? { hint: "Retry shortly." } : {},
  );
}

/** 409: the workspace restarted or stopped while the operation was being prepared. */
const movedOn = () =>
  new ApiError(
    "WORKSPACE_STATE_CONFLICT",
    "The workspace was restarted or stopped while the operation was being prepared; nothing was sent.",
    { hint: "Retry: the running check looks at its current instance." },
  );

/** 409 PLUGIN_BUSY, naming the operation that holds the record. */
function pluginBusy(row: WorkspacePluginRow): ApiError {
  const op = row.state === "uninstalling" ? "uninstall" : "install";
  const command =
    row.commandId === null ? "its command is not confirmed yet" : `command ${row.commandId}`;
  return new ApiError(
    "PLUGIN_BUSY",
    `An ${op} of "${row.name}" ${row.version} is in progress (${command}, since ${row.updatedAt.toISOString()}).`,
    { hint: "GET /workspaces/{id}/plugins shows when it finishes; then try again." },
  );
}

function notAllowed(name: string): ApiError {
  return new ApiError("PLUGIN_NOT_ALLOWED", `Plugin "${name}" is not on the allowlist.`, {
    hint: "GET /plugins/allowlist shows it; PUT /plugins/allowlist changes it.",
  });
}

/**
 * The plugin routes (SPEC §7). `sources` is the deployment's source registry: the built-in
 * `local://` and `github://` unless a deployment registers more.
 *
 * Every route authenticates itself (no path-wide middleware), because the download route takes
 * a workspace token under `/workspaces/*`, where the other routers admit only the admin.
 */
export function pluginRoutes(sources: SourceRegistry = defaultSourceRegistry()) {
  const router = newRouter();
  const admin = [authenticate("admin")];

  router.openapi(
    createRoute({
      method: "get",
      path: "/plugins",
      tags: ["plugins"],
      summary: "The curated plugin registry (PLUGINS_DIR)",
      security,
      middleware: admin,
      request: {
        query: z.object({
          runtime: z
            .string()
            .max(64)
            .optional()
            .openapi({ description: "Only plugins for this runtime (- and _ compare equal)." }),
        }),
      },
      responses: {
        200: json(z.object({ plugins: z.array(RegistryEntrySchema) }), "Registry plugins by name."),
        ...errorResponses(AUTH_ERRORS, "VALIDATION_FAILED", STORE_ERRORS),
      },
    }),
    async (c) => {
      const { runtime } = c.req.valid("query");
      const { listRegistry } = await pluginRegistry();
      const plugins = await listRegistry(c.get("deps"), runtime === undefined ? {} : { runtime });
      return c.json({ plugins }, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/plugins/allowlist",
      tags: ["plugins"],
      summary: "The plugin allowlist (empty: every plugin allowed)",
      security,
      middleware: admin,
      responses: {
        200: json(AllowlistSchema, "The allowlist, sorted."),
        ...errorResponses(AUTH_ERRORS, STORE_ERRORS),
      },
    }),
    async (c) => c.json({ names: await getAllowlist(c.get("deps").db) }, 200),
  );

  router.openapi(
    createRoute({
      method: "put",
      path: "/plugins/allowlist",
      tags: ["plugins"],
      summary: "Replace the plugin allowlist",
      security,
      middleware: admin,
      request: {
        body: { content: { "application/json": { schema: AllowlistSchema } }, required: true },
      },
      responses: {
        200: json(AllowlistSchema, "The stored allowlist, sorted, without duplicates."),
        ...errorResponses(AUTH_ERRORS, BODY_ERRORS, "INVALID_PLUGIN_NAME", STORE_ERRORS),
      },
    }),
    async (c) => {
      const { names } = c.req.valid("json");
      const bad = names.flatMap((n, i) =>
        isValidPluginName(n) ? [] : [{ path: `names.${i}`, message: `it ${pluginNameProblem(n)}` }],
      );
      if (bad.length > 0) {
        throw new ApiError("INVALID_PLUGIN_NAME", "The allowlist holds invalid plugin names.", {
          fields: bad.slice(0, 20),
        });
      }
      return c.json({ names: await replaceAllowlist(c.get("deps").db, names) }, 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/workspaces/{id}/plugins",
      tags: ["plugins"],
      summary: "Plugins installed (or being installed) on a workspace",
      security,
      middleware: admin,
      request: { params: IdParam },
      responses: {
        200: json(z.object({ plugins: z.array(WorkspacePluginSchema) }), "By name."),
        ...errorResponses(AUTH_ERRORS, "WORKSPACE_NOT_FOUND", STORE_ERRORS),
      },
    }),
    async (c) => {
      const deps = c.get("deps");
      const row = await workspaceOr404(deps.db, c.req.valid("param").id);
      const rows = await listWorkspacePlugins(deps.db, row.id);
      return c.json(
        {
          plugins: rows.map((r) => ({
            name: r.name,
            version: r.version,
            source: r.source,
            digest: r.digest,
            state: r.state,
            commandId: r.commandId,
            error: r.error,
            updatedAt: r.updatedAt.toISOString(),
          })),
        },
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/workspaces/{id}/plugins",
      tags: ["plugins"],
      summary: "Install a plugin on the workspace's instance",
      description:
        "Order: body → workspace (404/409) → external runtime (422, before any fetch) → source " +
        "(400/422) and allowlist (403) → running check (503) → staging (404/413/422/502/504) → " +
        "one SSM program. 202 when it outlasts INSTALL_SYNC_WAIT_SECONDS; the sweep finishes it.",
      security,
      middleware: admin,
      request: {
        params: IdParam,
        query: WakeQuery,
        body: { content: { "application/json": { schema: InstallBody } }, required: true },
      },
      responses: {
        200: json(
          z.object({
            status: z.literal("installed"),
            plugin: z.string(),
            version: z.string(),
            source: z.string(),
            digest: z.string(),
          }),
          "Installed.",
        ),
        202: json(
          z.union([
            z.object({
              status: z.literal("installing"),
              plugin: z.string(),
              commandId: z.string().nullable().openapi({
                description: "Null when SSM's answer to the send was lost: the sweep confirms it.",
              }),
            }),
            WakingBody,
          ]),
          "Still installing (GET /workspaces/{id}/plugins shows the outcome), or waking a stopped workspace (?wake=true).",
        ),
        ...errorResponses(
          AUTH_ERRORS,
          BODY_ERRORS,
          "WORKSPACE_NOT_FOUND",
          "WORKSPACE_REMOVED",
          "EXTERNAL_RUNTIME",
          SOURCE_ERRORS,
          "PLUGIN_NOT_ALLOWED",
          TARGET_ERRORS,
          STAGE_ERRORS,
          "PLUGIN_BUSY",
          "WORKSPACE_STOPPED",
          "WORKSPACE_STATE_CONFLICT",
          "UPSTREAM_UNAVAILABLE",
          "COMMAND_FAILED",
          STORE_ERRORS,
        ),
      },
    }),
    async (c) => {
      const deps = c.get("deps");
      const body = c.req.valid("json");
      const row = await workspaceOr404(deps.db, c.req.valid("param").id);
      requireNotRemoved(row);
      if (await isExternalRuntime(deps, row.id)) {
        // Parsing is pure, so naming the plugin in the hint fetches nothing.
        const parsed = sources.parse(body.source, deps.config);
        const name = parsed.kind === "parsed" && parsed.source.name ? parsed.source.name : "<name>";
        throw externalRuntime(row.id, name);
      }
      const source = parseSource(sources, body.source, deps.config);
      const waking = await requireAwake(deps, row, c.req.valid("query").wake, "install");
      if (waking) return c.json(waking, 202);
      const { installPlugin } = await pluginInstall();
      const outcome = await installPlugin(deps, {
        workspace: row,
        source,
        ...(body.sha256 !== undefined && { sha256: body.sha256 }),
      });
      switch (outcome.kind) {
        case "installed":
          return c.json(
            {
              status: "installed" as const,
              plugin: outcome.record.name,
              version: outcome.record.version,
              source: outcome.record.source,
              digest: outcome.record.digest,
            },
            200,
          );
        case "installing":
          return c.json(
            { status: "installing" as const, plugin: outcome.name, commandId: outcome.commandId },
            202,
          );
        case "not-allowed":
          throw notAllowed(outcome.name);
        case "no-instance":
        case "stopped":
        case "state-unknown":
          throw targetError(outcome);
        case "stage-failed":
          throw stageError(outcome.failure);
        case "busy":
          throw pluginBusy(outcome.row);
        case "workspace-removed":
          throw new ApiError("WORKSPACE_REMOVED", "The workspace is removed.");
        case "moved-on":
          throw movedOn();
        case "upload-failed":
          throw uploadError(deps, outcome);
        case "out-of-time":
          throw new ApiError(
            "UPSTREAM_UNAVAILABLE",
            "The source took too long for the archive to be staged within this request; nothing was sent.",
            { hint: "Retry shortly." },
          );
        case "unreachable":
          throw unreachableError(outcome.pingStatus);
        case "send-failed":
          throw sendError(outcome.error);
        case "command-failed":
          throw new ApiError(
            "COMMAND_FAILED",
            `Installing "${outcome.name}" failed on the instance: ${outcome.message}`,
            { hint: "The previously installed version, if any, is still in place." },
          );
        default: {
          const unreachable: never = outcome;
          throw new Error(`unhandled install outcome ${JSON.stringify(unreachable)}`);
        }
      }
    },
  );

  router.openapi(
    createRoute({
      method: "delete",
      path: "/workspaces/{id}/plugins/{name}",
      tags: ["plugins"],
      summary: "Uninstall a plugin (its directory and its skills)",
      security,
      middleware: admin,
      request: { params: NameParams, query: WakeQuery },
      responses: {
        200: json(
          z.object({ status: z.literal("uninstalled"), plugin: z.string() }),
          "Uninstalled.",
        ),
        202: json(
          z.union([
            z.object({
              status: z.literal("uninstalling"),
              plugin: z.string(),
              commandId: z.string().nullable().openapi({
                description: "Null when SSM's answer to the send was lost: the sweep confirms it.",
              }),
            }),
            WakingBody,
          ]),
          "Still uninstalling (GET /workspaces/{id}/plugins shows the outcome), or waking a stopped workspace (?wake=true).",
        ),
        ...errorResponses(
          AUTH_ERRORS,
          "INVALID_PLUGIN_NAME",
          "WORKSPACE_NOT_FOUND",
          "WORKSPACE_REMOVED",
          "EXTERNAL_RUNTIME",
          "PLUGIN_NOT_INSTALLED",
          "PLUGIN_BUSY",
          "WORKSPACE_STOPPED",
          "WORKSPACE_STATE_CONFLICT",
          TARGET_ERRORS,
          "COMMAND_FAILED",
          STORE_ERRORS,
        ),
      },
    }),
    async (c) => {
      const deps = c.get("deps");
      const { id, name } = c.req.valid("param");
      requireName(name);
      const row = await workspaceOr404(deps.db, id);
      requireNotRemoved(row);
      if (await isExternalRuntime(deps, row.id)) throw externalRuntime(row.id, name);
      const waking = await requireAwake(deps, row, c.req.valid("query").wake, "uninstall");
      if (waking) return c.json(waking, 202);
      const outcome = await uninstallPlugin(deps, { workspace: row, name });
      switch (outcome.kind) {
        case "uninstalled":
          return c.json({ status: "uninstalled" as const, plugin: name }, 200);
        case "uninstalling":
          return c.json(
            { status: "uninstalling" as const, plugin: name, commandId: outcome.commandId },
            202,
          );
        case "workspace-removed":
          throw new ApiError("WORKSPACE_REMOVED", "The workspace is removed.");
        case "moved-on":
          throw movedOn();
        case "not-installed":
          throw new ApiError("PLUGIN_NOT_INSTALLED", `Plugin "${name}" is not installed here.`);
        case "busy":
          throw pluginBusy(outcome.row);
        case "no-instance":
        case "stopped":
        case "state-unknown":
          throw targetError(outcome);
        case "unreachable":
          throw unreachableError(outcome.pingStatus);
        case "send-failed":
          throw sendError(outcome.error);
        case "command-failed":
          throw new ApiError(
            "COMMAND_FAILED",
            `Uninstalling "${name}" failed on the instance: ${outcome.message}`,
            { hint: "Retry the uninstall; it is safe to repeat." },
          );
        default: {
          const unreachable: never = outcome;
          throw new Error(`unhandled uninstall outcome ${JSON.stringify(unreachable)}`);
        }
      }
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/workspaces/{id}/plugins/{name}/download",
      tags: ["plugins"],
      summary: "Download a plugin as tar.gz (how external agents pull plugins)",
      description:
        "The workspace's own token or the admin token. Archives up to DOWNLOAD_INLINE_MAX_BYTES " +
        "come inline; larger ones answer 302 to a presigned S3 URL. X-Plugin-Digest can be " +
        "recomputed from the unpacked files.",
      security,
      middleware: [authenticate("admin-or-workspace")],
      request: {
        params: NameParams,
        query: z.object({
          source: z
            .string()
            .min(1)
            .max(1024)
            .optional()
            .openapi({ description: "Default: local://NAME." }),
        }),
      },
      responses: {
        200: {
          description: "The plugin, a deterministic tar.gz.",
          headers: {
            ...pluginHeaders,
            "Content-Disposition": {
              description: 'attachment; filename="<name>-<version>.tar.gz"',
              schema: { type: "string" as const },
            },
          },
          content: {
            "application/gzip": { schema: z.string().openapi({ format: "binary" }) },
          },
        },
        302: {
          description: "Too large to answer inline: a presigned S3 URL (valid 300 s).",
          headers: {
            ...pluginHeaders,
            Location: { description: "The presigned URL.", schema: { type: "string" as const } },
          },
        },
        ...errorResponses(
          AUTH_ERRORS,
          "VALIDATION_FAILED",
          "INVALID_PLUGIN_NAME",
          "WORKSPACE_NOT_FOUND",
          SOURCE_ERRORS,
          "PLUGIN_NOT_ALLOWED",
          STAGE_ERRORS,
          "UPSTREAM_UNAVAILABLE",
          STORE_ERRORS,
        ),
      },
    }),
    async (c) => {
      const deps = c.get("deps");
      const { id, name } = c.req.valid("param");
      assertOwnWorkspace(c.get("caller"), id);
      requireName(name);
      await workspaceOr404(deps.db, id);
      const raw = c.req.valid("query").source ?? `local://${name}`;
      const source = parseSource(sources, raw, deps.config);
      const { preparePluginDownload } = await pluginDownload();
      const outcome = await preparePluginDownload(deps, { name, source });
      switch (outcome.kind) {
        case "inline":
        case "redirect": {
          const headers = {
            "X-Plugin-Name": outcome.name,
            "X-Plugin-Version": outcome.version,
            "X-Plugin-Source": outcome.source,
            "X-Plugin-Digest": outcome.digest,
            "Cache-Control": "no-store",
          };
          if (outcome.kind === "redirect") {
            return c.body(null, 302, { ...headers, Location: outcome.url });
          }
          return c.body(new Uint8Array(outcome.archive), 200, {
            ...headers,
            "Content-Type": "application/gzip",
            "Content-Disposition": `attachment; filename="${outcome.fileName}"`,
          });
        }
        case "name-mismatch":
          throw new ApiError(
            "PLUGIN_NAME_MISMATCH",
            `The source holds plugin "${outcome.actual}", not "${outcome.expected}".`,
          );
        case "not-allowed":
          throw notAllowed(outcome.name);
        case "stage-failed":
          throw stageError(outcome.failure);
        case "upload-failed":
          throw uploadError(deps, outcome);
        default: {
          const unreachable: never = outcome;
          throw new Error(`unhandled download outcome ${JSON.stringify(unreachable)}`);
        }
      }
    },
  );

  return router;
}
