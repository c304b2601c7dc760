import { createHash, randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  pluginAllowlist,
  workspaceEvents,
  workspacePlugins,
  workspaces,
  workspaceTokens,
} from "../../../lib/db/schema.js";
import { ADMIN_TOKEN, createTestContext, dbKind, type TestContext } from "../../support/context.js";

// The route × caller matrix (SPEC §5) and token hygiene. The routes come from GET /openapi.json
// at test time, so a new route is covered the day it is documented: it is taken to be admin-only
// unless the tables below say otherwise, and a path parameter without a test value fails loudly.

let t: TestContext;

beforeAll(async () => {
  t = await createTestContext();
});
afterAll(async () => {
  await t?.close();
});
beforeEach(async () => {
  await t.reset();
});

/** Undocumented but served without a token. */
const UNDOCUMENTED_PUBLIC = ["GET /openapi.json", "GET /docs"];
/** Documented routes served without a token. */
const PUBLIC = new Set(["GET /health", ...UNDOCUMENTED_PUBLIC]);
/** Routes for a workspace's own agent: the workspace is the token's, the admin token is refused. */
const WORKSPACE_ONLY = new Set(["POST /registry/register", "POST /registry/heartbeat"]);
/** Routes about the workspace in the path that its own token may call as well as the admin. */
const ADMIN_OR_OWN = new Set(["GET /workspaces/{id}/plugins/{name}/download"]);

/** The routes SPEC §5 names; the document must list at least these. */
const SPEC_ROUTES = [
  "GET /health",
  "POST /workspaces",
  "GET /workspaces",
  "GET /workspaces/{id}",
  "GET /workspaces/{id}/status",
  "POST /workspaces/{id}/restart",
  "DELETE /workspaces/{id}",
  "GET /workspaces/{id}/console",
  "GET /workspaces/{id}/events",
  "POST /workspaces/{id}/tokens",
  "POST /registry/register",
  "POST /registry/heartbeat",
  "GET /plugins",
  "GET /plugins/allowlist",
  "PUT /plugins/allowlist",
  "GET /workspaces/{id}/plugins",
  "POST /workspaces/{id}/plugins",
  "DELETE /workspaces/{id}/plugins/{name}",
  "GET /workspaces/{id}/plugins/{name}/download",
  "POST /workspaces/{id}/commands",
  "GET /workspaces/{id}/commands",
  "GET /workspaces/{id}/commands/{commandId}",
  "POST /workspaces/{id}/commands/{commandId}/cancel",
  "GET /workspaces/{id}/commands/{commandId}/output",
];

/** Bodies that make the admin's call do something real; other bodies are generated. */
const BODIES: Record<string, unknown> = {
  "POST /workspaces": { name: "matrix", runtime: "external" },
  "PUT /plugins/allowlist": { names: [] },
  "POST /webhooks": { url: "https://hooks.example.com/in", events: ["*"] },
  "POST /workspaces/{id}/plugins": { source: "local://code-review" },
  "POST /workspaces/{id}/commands": { argv: ["true"] },
};

interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  minItems?: number;
  enum?: unknown[];
  example?: unknown;
  default?: unknown;
  minimum?: number;
  anyOf?: JsonSchema[];
}

interface Operation {
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string; required?: boolean; schema?: JsonSchema }[];
  requestBody?: { required?: boolean; content: Record<string, { schema: JsonSchema }> };
}

interface OpenApiDoc {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, JsonSchema> };
}

interface Route {
  /** `METHOD /path/{param}` as documented. */
  key: string;
  method: string;
  template: string;
  operation: Operation | null;
}

type Access = "public" | "admin" | "workspace" | "admin-or-own";

const accessOf = (route: Route): Access => {
  if (PUBLIC.has(route.key)) return "public";
  if (WORKSPACE_ONLY.has(route.key)) return "workspace";
  if (ADMIN_OR_OWN.has(route.key)) return "admin-or-own";
  return "admin";
};

/** A route is about the workspace its path names. */
const aboutWorkspace = (route: Route) => route.template.includes("{id}");

async function openApi(): Promise<OpenApiDoc> {
  const res = await t.app.request("/openapi.json");
  expect(res.status).toBe(200);
  return (await res.json()) as OpenApiDoc;
}

async function documentedRoutes(): Promise<{ doc: OpenApiDoc; routes: Route[] }> {
  const doc = await openApi();
  const routes: Route[] = [];
  for (const [template, operations] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const m = method.toUpperCase();
      routes.push({ key: `${m} ${template}`, method: m, template, operation });
    }
  }
  for (const key of UNDOCUMENTED_PUBLIC) {
    const [method = "", template = ""] = key.split(" ");
    routes.push({ key, method, template, operation: null });
  }
  return { doc, routes };
}

/** The smallest value a schema accepts: its example, first enum value, or a minimal instance. */
function minimalValue(doc: OpenApiDoc, schema: JsonSchema): unknown {
  if (schema.$ref !== undefined) {
    const name = schema.$ref.replace("#/components/schemas/", "");
    const target = doc.components?.schemas?.[name];
    if (!target) throw new Error(`unresolved ${schema.$ref}`);
    return minimalValue(doc, target);
  }
  if (schema.example !== undefined) return schema.example;
  if (schema.enum !== undefined) return schema.enum[0];
  if (schema.anyOf?.[0]) return minimalValue(doc, schema.anyOf[0]);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case "object":
      return Object.fromEntries(
        (schema.required ?? []).map((p) => [p, minimalValue(doc, schema.properties?.[p] ?? {})]),
      );
    case "array":
      return Array.from({ length: schema.minItems ?? 0 }, () =>
        minimalValue(doc, schema.items ?? {}),
      );
    case "integer":
    case "number":
      return schema.minimum ?? 1;
    case "boolean":
      return false;
    default:
      return "x";
  }
}

interface World {
  a: { id: string; token: string };
  b: { id: string; token: string };
  /** An env value of workspace A: no response may ever carry it. */
  envSecret: string;
}

async function createExternal(name: string, env: Record<string, string> = {}) {
  const res = await t.admin("POST", "/workspaces", { name, runtime: "external", env });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { workspace: { id: string }; token: string };
  return { id: body.workspace.id, token: body.token };
}

async function world(): Promise<World> {
  const envSecret = `env-secret-${randomBytes(12).toString("hex")}`;
  return {
    a: await createExternal("workspace-a", { API_KEY: envSecret }),
    b: await createExternal("workspace-b"),
    envSecret,
  };
}

const PATH_VALUES = (w: World): Record<string, string> => ({
  id: w.a.id,
  name: "code-review",
  commandId: "00000000-0000-4000-8000-000000000000",
  // No such webhook or delivery: the admin's call answers 404, every other caller is refused.
  webhookId: "00000000-0000-4000-8000-00000000feed",
  deliveryId: "00000000-0000-4000-8000-00000000beef",
});

function requestFor(doc: OpenApiDoc | null, route: Route, w: World) {
  const values = PATH_VALUES(w);
  const path = route.template.replace(/\{([^}]+)\}/g, (_m, param: string) => {
    const value = values[param];
    if (value === undefined) {
      throw new Error(`no test value for path parameter {${param}} of ${route.key}; add one`);
    }
    return encodeURIComponent(value);
  });
  const query = new URLSearchParams();
  for (const p of route.operation?.parameters ?? []) {
    if (p.in === "query" && p.required && doc) {
      query.set(p.name, String(minimalValue(doc, p.schema ?? {})));
    }
  }
  const rb = route.operation?.requestBody;
  let body: string | undefined;
  if (rb && doc) {
    const schema = rb.content["application/json"]?.schema;
    body = JSON.stringify(BODIES[route.key] ?? (schema ? minimalValue(doc, schema) : {}));
  }
  const qs = query.size > 0 ? `?${query}` : "";
  return { path: `${path}${qs}`, body };
}

async function send(
  doc: OpenApiDoc | null,
  route: Route,
  w: World,
  authorization: string | null,
  bodyOverride?: string,
) {
  const { path, body } = requestFor(doc, route, w);
  const sent = bodyOverride ?? body;
  const res = await t.app.request(path, {
    method: route.method,
    headers: {
      ...(authorization !== null && { authorization }),
      ...(sent !== undefined && { "content-type": "application/json" }),
    },
    ...(sent !== undefined && { body: sent }),
  });
  const text = await res.text();
  return { res, text, code: errorCode(text) };
}

function errorCode(text: string): string | undefined {
  try {
    return (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

const STACK_FRAME = /\n\s+at\s|\bat\s+\S+\s+\(?\S+\.[cm]?[jt]s:\d+:\d+\)?/;

/**
 * What is wrong with a response as an error of the API: the one error shape, the request id in
 * the body equal to the `x-request-id` header, and none of the secrets or internals.
 */
function responseProblems(res: Response, text: string, secrets: string[]): string[] {
  const problems: string[] = [];
  const rid = res.headers.get("x-request-id");
  if (!rid) problems.push("no x-request-id header");
  for (const secret of secrets) {
    if (text.includes(secret)) problems.push(`leaks ${secret.slice(0, 6)}…`);
  }
  if (STACK_FRAME.test(text) || text.includes(process.cwd())) problems.push("leaks a stack trace");
  if (res.status < 400) return problems;
  if (!res.headers.get("content-type")?.startsWith("application/json")) {
    problems.push(`error content-type ${res.headers.get("content-type")}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return [...problems, `error body is not JSON: ${text.slice(0, 80)}`];
  }
  const top = body as { error?: Record<string, unknown> };
  const e = top.error;
  if (Object.keys(top).join() !== "error" || typeof e !== "object" || e === null) {
    return [...problems, `error body shape ${text.slice(0, 120)}`];
  }
  const allowed = new Set(["code", "message", "hint", "fields", "requestId"]);
  const extra = Object.keys(e).filter((k) => !allowed.has(k));
  if (extra.length > 0) problems.push(`unexpected error fields ${extra.join(",")}`);
  for (const k of ["code", "message", "requestId"]) {
    if (typeof e[k] !== "string" || e[k] === "") problems.push(`error.${k} missing`);
  }
  if (e.requestId !== rid) problems.push(`requestId ${String(e.requestId)} ≠ header ${rid}`);
  return problems;
}

const secretsOf = (w: World) => [ADMIN_TOKEN, w.a.token, w.b.token, w.envSecret];

/** Everything a refused request must leave as it was. */
async function fingerprint() {
  const db = t.opened.db;
  const [ws, tokens, plugins, events, allow] = await Promise.all([
    db.select().from(workspaces),
    db.select().from(workspaceTokens),
    db.select().from(workspacePlugins),
    db.select().from(workspaceEvents),
    db.select().from(pluginAllowlist),
  ]);
  return {
    workspaces: ws
      .map((w) => `${w.id} ${w.status} g${w.generation} ${w.updatedAt.toISOString()}`)
      .sort(),
    tokens: tokens.map((k) => `${k.id} ${k.workspaceId} revoked=${k.revokedAt !== null}`).sort(),
    workspacePlugins: plugins.length,
    events: events.length,
    allowlist: allow.map((a) => a.name).sort(),
  };
}

const flipLast = (token: string) => `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`;

/** Authorization headers that name no caller. */
function wrongAuthorizations(w: World): [string, string][] {
  return [
    ["a random 43-character token", `Bearer ${randomBytes(32).toString("base64url")}`],
    ["A's token with its last character changed", `Bearer ${flipLast(w.a.token)}`],
    ["the admin token with its last character changed", `Bearer ${flipLast(ADMIN_TOKEN)}`],
    ["the admin token with one character more", `Bearer ${ADMIN_TOKEN}x`],
    ["the admin token without its last character", `Bearer ${ADMIN_TOKEN.slice(0, -1)}`],
    ["Bearer x", "Bearer x"],
    ["Basic credentials", `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString("base64")}`],
    ["an empty header", ""],
    ["the scheme alone", "Bearer "],
    ["the admin token without a scheme", ADMIN_TOKEN],
    ["two tokens", `Bearer ${w.a.token} ${ADMIN_TOKEN}`],
  ];
}

const describeCall = (label: string, route: Route, status: number, code?: string) =>
  `${label} ${route.key} → ${status} ${code ?? ""}`.trim();

describe(`route × caller matrix over ${dbKind()}`, () => {
  it("derives the routes from the OpenAPI document, SPEC §5's among them", async () => {
    const { routes } = await documentedRoutes();
    const keys = routes.map((r) => r.key);
    expect(keys).toEqual(expect.arrayContaining(SPEC_ROUTES));
    for (const key of [...WORKSPACE_ONLY, ...ADMIN_OR_OWN]) expect(keys).toContain(key);
  });

  it("documents bearer security on every route that needs a token, and none on the public ones", async () => {
    const { routes } = await documentedRoutes();
    const wrong = routes
      .filter((r) => r.operation !== null)
      .filter((r) => {
        const bearer = (r.operation?.security ?? []).some((s) => "bearer" in s);
        return accessOf(r) === "public" ? bearer : !bearer;
      })
      .map((r) => r.key);
    expect(wrong).toEqual([]);
  });

  it("no token: 401 UNAUTHORIZED on every route but /health, /openapi.json and /docs", async () => {
    // Prepare
    const w = await world();
    const { doc, routes } = await documentedRoutes();
    const before = await fingerprint();
    const problems: string[] = [];

    // Act
    for (const route of routes) {
      const { res, text, code } = await send(doc, route, w, null);
      const expected = accessOf(route) === "public" ? res.status === 200 : res.status === 401;
      if (!expected || (accessOf(route) !== "public" && code !== "UNAUTHORIZED")) {
        problems.push(describeCall("no token", route, res.status, code));
      }
      problems.push(...responseProblems(res, text, secretsOf(w)).map((p) => `${route.key}: ${p}`));
      // Authentication comes before the body is looked at: a broken body changes nothing.
      if (route.operation?.requestBody && accessOf(route) !== "public") {
        const broken = await send(doc, route, w, null, '{"broken":');
        if (broken.res.status !== 401) {
          problems.push(describeCall("no token, malformed body", route, broken.res.status));
        }
      }
    }

    // Assess
    expect(problems).toEqual([]);
    expect(await fingerprint()).toEqual(before);
  });

  it("wrong tokens: 401 UNAUTHORIZED on every route that needs one", async () => {
    // Prepare
    const w = await world();
    const { doc, routes } = await documentedRoutes();
    const before = await fingerprint();
    const problems: string[] = [];
    let calls = 0;

    // Act
    for (const route of routes.filter((r) => accessOf(r) !== "public")) {
      for (const [label, authorization] of wrongAuthorizations(w)) {
        const { res, text, code } = await send(doc, route, w, authorization);
        calls++;
        if (res.status !== 401 || code !== "UNAUTHORIZED") {
          problems.push(describeCall(label, route, res.status, code));
        }
        const secrets = [...secretsOf(w), authorization.replace(/^\S+ /, "")].filter(
          (s) => s.length >= 16,
        );
        problems.push(...responseProblems(res, text, secrets).map((p) => `${route.key}: ${p}`));
      }
    }

    // Assess
    expect(problems).toEqual([]);
    expect(calls).toBeGreaterThanOrEqual(SPEC_ROUTES.length * 11 - 11);
    expect(await fingerprint()).toEqual(before);
  });

  it("public routes answer whatever the Authorization header holds", async () => {
    const w = await world();
    const { doc, routes } = await documentedRoutes();
    const problems: string[] = [];
    for (const route of routes.filter((r) => accessOf(r) === "public")) {
      for (const [label, authorization] of wrongAuthorizations(w)) {
        const { res } = await send(doc, route, w, authorization);
        if (res.status !== 200) problems.push(describeCall(label, route, res.status));
      }
    }
    expect(problems).toEqual([]);
  });

  it("another workspace's token: 403 FORBIDDEN on every route about workspace A and every admin route", async () => {
    // Prepare
    const w = await world();
    const { doc, routes } = await documentedRoutes();
    const before = await fingerprint();
    const problems: string[] = [];
    const refused = routes.filter(
      (r) => accessOf(r) === "admin" || (accessOf(r) === "admin-or-own" && aboutWorkspace(r)),
    );

    // Act
    for (const route of refused) {
      const { res, text, code } = await send(doc, route, w, `Bearer ${w.b.token}`);
      if (res.status !== 403 || code !== "FORBIDDEN") {
        problems.push(describeCall("B's token", route, res.status, code));
      }
      problems.push(...responseProblems(res, text, secretsOf(w)).map((p) => `${route.key}: ${p}`));
    }

    // Assess
    expect(problems).toEqual([]);
    expect(refused.length).toBeGreaterThanOrEqual(SPEC_ROUTES.length - 3);
    expect(await fingerprint()).toEqual(before);
    // B's token is live all along: the 403s are about the route, not the token.
    expect((await t.as(w.b.token, "POST", "/registry/heartbeat")).status).toBe(200);
  });

  it("a workspace's own token: 403 FORBIDDEN on admin routes, accepted on its own routes", async () => {
    // Prepare
    const w = await world();
    const { doc, routes } = await documentedRoutes();
    const before = await fingerprint();
    const problems: string[] = [];
    const adminOnly = routes.filter((r) => accessOf(r) === "admin");

    // Act
    for (const route of adminOnly) {
      const { res, text, code } = await send(doc, route, w, `Bearer ${w.a.token}`);
      if (res.status !== 403 || code !== "FORBIDDEN") {
        problems.push(describeCall("A's token", route, res.status, code));
      }
      problems.push(...responseProblems(res, text, secretsOf(w)).map((p) => `${route.key}: ${p}`));
    }
    const afterRefusals = await fingerprint();
    for (const route of routes.filter((r) => ["workspace", "admin-or-own"].includes(accessOf(r)))) {
      const { res, text, code } = await send(doc, route, w, `Bearer ${w.a.token}`);
      if ([401, 403].includes(res.status) || res.status >= 500) {
        problems.push(describeCall("A's token (own)", route, res.status, code));
      }
      problems.push(...responseProblems(res, text, secretsOf(w)).map((p) => `${route.key}: ${p}`));
    }

    // Assess
    expect(problems).toEqual([]);
    expect(afterRefusals).toEqual(before);
  });

  it("admin: never 401 or 403, except on the agent's own routes (the admin token is no workspace token)", async () => {
    // Prepare
    const w = await world();
    const { doc, routes } = await documentedRoutes();
    const problems: string[] = [];

    // Act
    for (const route of routes) {
      const { res, text, code } = await send(doc, route, w, `Bearer ${ADMIN_TOKEN}`);
      const access = accessOf(route);
      if (access === "workspace") {
        if (res.status !== 403 || code !== "FORBIDDEN") {
          problems.push(describeCall("admin", route, res.status, code));
        }
      } else if ([401, 403].includes(res.status) || res.status >= 500) {
        problems.push(describeCall("admin", route, res.status, code));
      }
      problems.push(
        ...responseProblems(res, text, [w.a.token, w.b.token, w.envSecret]).map(
          (p) => `${route.key}: ${p}`,
        ),
      );
    }

    // Assess
    expect(problems).toEqual([]);
  });
});

describe(`token hygiene over ${dbKind()}`, () => {
  const heartbeat = (token: string) => t.as(token, "POST", "/registry/heartbeat");

  it("a token that differs only in its last character is refused", async () => {
    // Prepare
    const w = await world();

    // Act + Assess
    expect((await heartbeat(w.a.token)).status).toBe(200);
    expect((await heartbeat(flipLast(w.a.token))).status).toBe(401);
    expect((await t.as(ADMIN_TOKEN, "GET", "/workspaces")).status).toBe(200);
    expect((await t.as(flipLast(ADMIN_TOKEN), "GET", "/workspaces")).status).toBe(401);
    expect((await t.as(ADMIN_TOKEN.toUpperCase(), "GET", "/workspaces")).status).toBe(401);
  });

  it("revoked tokens are refused: minting a new one revokes the old, removal revokes all", async () => {
    // Prepare
    const w = await world();
    const download = (token: string) =>
      t.as(token, "GET", `/workspaces/${w.a.id}/plugins/code-review/download`);
    expect((await download(w.a.token)).status).toBe(200);

    // Act
    const minted = await t.admin("POST", `/workspaces/${w.a.id}/tokens`);
    const fresh = ((await minted.json()) as { token: string }).token;

    // Assess
    expect(minted.status).toBe(201);
    expect(fresh).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await heartbeat(w.a.token)).status).toBe(401);
    expect((await download(w.a.token)).status).toBe(401);
    expect((await heartbeat(fresh)).status).toBe(200);
    expect((await t.admin("DELETE", `/workspaces/${w.a.id}`)).status).toBe(200);
    expect((await heartbeat(fresh)).status).toBe(401);
    expect((await download(fresh)).status).toBe(401);
    // B is untouched by A's revocations.
    expect((await heartbeat(w.b.token)).status).toBe(200);
  });

  it("marks last_used_at on every use, and a refused token touches nothing", async () => {
    // Prepare
    const w = await world();
    const lastUsed = async () => {
      const rows = await t.opened.db.select().from(workspaceTokens);
      return rows.find((r) => r.workspaceId === w.a.id)?.lastUsedAt ?? null;
    };
    expect(await lastUsed()).toBeNull();

    // Act + Assess: first use
    const t0 = Date.now();
    expect((await heartbeat(w.a.token)).status).toBe(200);
    const first = await lastUsed();
    expect(first).toBeInstanceOf(Date);
    expect(Math.abs((first?.getTime() ?? 0) - t0)).toBeLessThan(60_000);

    // A later use moves it again.
    await t.opened.db.execute(
      sql`update workspace_tokens set last_used_at = '2000-01-01T00:00:00Z' where workspace_id = ${w.a.id}`,
    );
    expect((await heartbeat(flipLast(w.a.token))).status).toBe(401);
    expect((await lastUsed())?.toISOString()).toBe("2000-01-01T00:00:00.000Z");
    expect((await heartbeat(w.a.token)).status).toBe(200);
    expect((await lastUsed())?.getTime()).toBeGreaterThan(Date.parse("2020-01-01"));
  });

  it("stores the token's sha256 and prefix, never the token", async () => {
    // Prepare
    const w = await world();

    // Act
    const rows = await t.opened.db.select().from(workspaceTokens);
    const everything = JSON.stringify(
      await Promise.all([
        t.opened.db.select().from(workspaces),
        t.opened.db.select().from(workspaceEvents),
        rows,
      ]),
    );

    // Assess
    for (const { id, token } of [w.a, w.b]) {
      const row = rows.find((r) => r.workspaceId === id);
      expect(row?.tokenHash).toBe(createHash("sha256").update(token).digest("hex"));
      expect(row?.tokenHash).not.toBe(token);
      expect(row?.prefix).toBe(token.slice(0, 8));
      expect(everything).not.toContain(token);
    }
    expect(everything).not.toContain(ADMIN_TOKEN);
  });
});
