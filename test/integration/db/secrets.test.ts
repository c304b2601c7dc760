import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { openDb } from "../../../lib/db/client.js";
import type { Deps } from "../../../lib/deps.js";
import { createApp } from "../../../lib/http/app.js";
import { createLog } from "../../../lib/log.js";
import { runSweep } from "../../../lib/sweep/run.js";
import { instanceToken } from "../../../lib/workspaces/tokens.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// Nothing secret in any log line or error body: env values, tokens (admin, workspace, instance),
// token hashes, presigned URLs' queries, SQL parameters. One distinctive secret is planted in
// every input that can carry one; every error path is driven, including 500s (a failing
// statement), 503s (no database) and the sweep over a failing database; everything the logger
// writes (the real Powertools logger, captured from stdout and stderr) and every answer is
// searched for it. Each error answered must also be one its route declares in the OpenAPI
// document.

const MARK = "sk-planted-4e7d1c9a";
const ADMIN = `${MARK}-admin-token`;
const ENV_VALUE = `${MARK}-env-value`;
const IDEMPOTENCY_KEY = `${MARK}-idempotency-key`;
/** Shaped like a token (43 base64url characters), so it reaches the database lookup. */
const PLANTED_BEARER = `${MARK}-bearer`.padEnd(43, "x");
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/** Every secret to search for; tokens the API issues are added as they are issued. */
const secrets = new Set([MARK, ADMIN, sha256(ADMIN), sha256(PLANTED_BEARER), ENV_VALUE]);
const addToken = (token: string) => {
  secrets.add(token);
  secrets.add(sha256(token));
};

let c: ComputeCloud;
let t: TestContext;
let deps: Deps;
let app: ReturnType<typeof createApp>;
const written: string[] = [];

interface Answer {
  route: string;
  status: number;
  text: string;
  headers: [string, string][];
  /** The one answer that shows a token by design (a create or a mint): not searched for it. */
  issues?: string;
}
const answers: Answer[] = [];

beforeAll(async () => {
  // What the Powertools logger writes: INFO to stdout, WARN and ERROR to stderr.
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
      return true;
    });
  }
  c = await startComputeCloud();
  t = await createTestContext({
    aws: c.clients({ maxAttempts: 1, requestTimeoutMs: 3_000 }),
    env: { ADMIN_TOKEN: ADMIN, DOWNLOAD_INLINE_MAX_BYTES: "1" },
  });
  deps = { ...t.deps, log: createLog("api", "DEBUG") };
  app = createApp(deps);
});

afterAll(async () => {
  vi.restoreAllMocks();
  await t?.close();
  await c?.close();
});

interface CallOptions {
  token?: string | null;
  body?: unknown;
  raw?: { body: string; type: string };
  headers?: Record<string, string>;
}

async function call(
  on: ReturnType<typeof createApp>,
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<Answer> {
  const token = opts.token === undefined ? ADMIN : opts.token;
  const headers: Record<string, string> = {
    ...(token !== null && { authorization: `Bearer ${token}` }),
    ...opts.headers,
  };
  let body: string | undefined;
  if (opts.raw) {
    body = opts.raw.body;
    headers["content-type"] = opts.raw.type;
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers["content-type"] = "application/json";
  }
  const res = await on.request(path, { method, headers, ...(body !== undefined && { body }) });
  const answer: Answer = {
    route: `${method} ${path}`,
    status: res.status,
    text: await res.text(),
    headers: [...res.headers.entries()],
  };
  answers.push(answer);
  return answer;
}

const json = <T>(a: Answer) => JSON.parse(a.text) as T;

async function renamed<T>(table: string, work: () => Promise<T>): Promise<T> {
  await t.opened.db.execute(sql.raw(`alter table ${table} rename to ${table}_away`));
  try {
    return await work();
  } finally {
    await t.opened.db.execute(sql.raw(`alter table ${table}_away rename to ${table}`));
  }
}

describe(`no secret in logs or error bodies over ${dbKind()}`, () => {
  it("drives every error path with planted secrets, then finds none of them anywhere", async () => {
    // Prepare: an instance-backed workspace (its env and instance token carry secrets), an
    // external one with its token.
    const created = await call(app, "POST", "/workspaces", {
      body: { name: "agent", env: { OPENAI_API_KEY: ENV_VALUE } },
      headers: { "idempotency-key": IDEMPOTENCY_KEY },
    });
    expect(created.status).toBe(201);
    const ws = json<{ workspace: { id: string; instanceId: string } }>(created).workspace;
    addToken(instanceToken(ADMIN, ws.id, 1).token);
    const ext = await call(app, "POST", "/workspaces", {
      body: { name: "puller", runtime: "external", env: { OPENAI_API_KEY: ENV_VALUE } },
    });
    const extBody = json<{ workspace: { id: string }; token: string }>(ext);
    ext.issues = extBody.token;
    addToken(extBody.token);
    const extId = extBody.workspace.id;

    // Act: bad input, every kind.
    await call(app, "POST", "/workspaces", {
      body: { name: "agent", env: { OPENAI_API_KEY: `${ENV_VALUE}-changed` } },
      headers: { "idempotency-key": IDEMPOTENCY_KEY },
    });
    await call(app, "POST", "/workspaces", { body: { name: "x", env: { "1BAD": ENV_VALUE } } });
    await call(app, "POST", "/workspaces", { body: { name: "x", env: { K: `${ENV_VALUE}\n` } } });
    await call(app, "POST", "/workspaces", { body: { name: "x", env: { K: ENV_VALUE }, x: MARK } });
    await call(app, "POST", "/workspaces", {
      raw: { body: `{"name":"x","env":{"K":"${ENV_VALUE}"`, type: "application/json" },
    });
    await call(app, "POST", "/workspaces", {
      raw: { body: `name=x&env=${ENV_VALUE}`, type: "text/plain" },
    });
    await call(app, "POST", "/workspaces", {
      body: { name: "x", env: { K: ENV_VALUE.repeat(70_000 / ENV_VALUE.length) } },
    });
    for (const q of [`cursor=${MARK}`, `status=${MARK}`, `limit=${MARK}`]) {
      await call(app, "GET", `/workspaces?${q}`);
    }
    await call(app, "GET", `/workspaces/${ws.id}/events?cursor=${MARK}`);

    // Tokens: a planted one, a malformed one, a workspace token where it is not taken.
    await call(app, "GET", "/workspaces", { token: PLANTED_BEARER });
    await call(app, "POST", "/registry/heartbeat", { token: PLANTED_BEARER });
    await call(app, "GET", "/workspaces", { token: `${MARK} with spaces` });
    await call(app, "GET", "/workspaces", { token: `${ADMIN}x` });
    await call(app, "GET", `/workspaces/${ws.id}`, { token: extBody.token });
    await call(app, "POST", "/registry/heartbeat", { token: ADMIN });
    await call(app, "GET", "/workspaces/00000000-0000-4000-8000-000000000000");

    // Plugin sources with credentials, in bodies and in query strings.
    const sources = [
      `github://x-access-token:${MARK}@owner/repo#v1`,
      `https://user:${MARK}@example.com/p.tgz?sig=${MARK}`,
      `github://owner/repo#v1?token=${MARK}`,
      `local://user:${MARK}@code-review`,
    ];
    for (const source of sources) {
      await call(app, "POST", `/workspaces/${ws.id}/plugins`, { body: { source } });
      await call(app, "POST", `/workspaces/${extId}/plugins`, { body: { source } });
      const q = encodeURIComponent(source);
      for (const token of [ADMIN, extBody.token]) {
        await call(app, "GET", `/workspaces/${extId}/plugins/code-review/download?source=${q}`, {
          token,
        });
      }
    }
    // A download large enough to be redirected to a presigned URL (DOWNLOAD_INLINE_MAX_BYTES=1).
    const redirected = await call(app, "GET", `/workspaces/${extId}/plugins/code-review/download`, {
      token: extBody.token,
    });
    expect(redirected.status).toBe(302);

    // An install on the running instance: its program carries a presigned URL; SSM refuses it.
    await waitFor(async () => {
      const view = await c.instance(ws.instanceId);
      return view.ssmPingStatus === "Online" ? view : undefined;
    });
    await t.opened.db.execute(sql`update workspaces set status = 'online' where id = ${ws.id}`);
    await c.fault({
      service: "ssm",
      action: "SendCommand",
      error: "ThrottlingException",
      httpStatus: 400,
    });
    await call(app, "POST", `/workspaces/${ws.id}/plugins`, {
      body: { source: "local://code-review" },
    });
    await c.clearFaults();

    // 500: a statement that fails (a missing table), on writes and on token lookups.
    await renamed("workspace_tokens", async () => {
      await call(app, "POST", "/workspaces", {
        body: { name: "x", env: { OPENAI_API_KEY: ENV_VALUE } },
        headers: { "idempotency-key": `${IDEMPOTENCY_KEY}-2` },
      });
      await call(app, "POST", "/workspaces", {
        body: { name: "x", runtime: "external", env: { OPENAI_API_KEY: ENV_VALUE } },
      });
      await call(app, "POST", "/registry/heartbeat", { token: PLANTED_BEARER });
      await call(app, "POST", "/registry/heartbeat", { token: extBody.token });
      await call(app, "POST", `/workspaces/${extId}/tokens`);
    });

    // 503: no database at all.
    const nowhere = await openDb("postgres://wcp:pw@127.0.0.1:1/wcp", {
      driver: "pg",
      onPoolError: () => {},
    });
    const offline = createApp({ ...deps, db: nowhere.db });
    await call(offline, "POST", "/workspaces", {
      body: { name: "x", env: { OPENAI_API_KEY: ENV_VALUE } },
      headers: { "idempotency-key": IDEMPOTENCY_KEY },
    });
    await call(offline, "POST", "/registry/heartbeat", { token: PLANTED_BEARER });
    await call(offline, "GET", `/workspaces/${ws.id}`);
    await nowhere.close();

    // The sweep over a failing database: a launch due for a re-drive (its user-data carries the
    // env value and the instance token), statements that fail on the missing event log.
    await t.opened.db.execute(sql`
      insert into workspaces (name, runtime, status, generation, env, updated_at)
      values ('redrive', 'langgraph', 'provisioning', 1, ${JSON.stringify({ K: ENV_VALUE })}::jsonb,
              now() - interval '31 seconds')`);
    await renamed("workspace_events", () =>
      runSweep(deps, { budget: { remainingMs: () => 60_000 } }),
    );

    // Assess: the paths were driven …
    const statuses = new Set(answers.map((a) => a.status));
    for (const s of [201, 302, 400, 401, 403, 404, 409, 413, 422, 500, 503]) {
      expect(statuses, `answered ${s}`).toContain(s);
    }
    const log = written.join("");
    expect(log).toContain("unhandled error");
    expect(log).toContain("database unavailable");
    expect(log).toContain("Failed query:");
    expect(log).toContain("sweep pass failed");

    // … and no secret appears in any log line or any answer.
    for (const secret of secrets) {
      expect(log.includes(secret), `log holds ${secret}`).toBe(false);
    }
    expect(log).not.toMatch(/X-Amz-(Signature|Credential)/);
    for (const a of answers) {
      const location =
        a.status === 302 ? a.headers.find(([k]) => k === "location")?.[1] : undefined;
      const headers = a.headers.filter(([k]) => k !== "location").map(([k, v]) => `${k}: ${v}`);
      const seen = `${a.text}\n${headers.join("\n")}`;
      for (const secret of secrets) {
        if (secret === a.issues || secret === sha256(a.issues ?? "")) continue;
        expect(seen.includes(secret), `${a.route} → ${a.status} holds ${secret}`).toBe(false);
      }
      expect(seen, a.route).not.toMatch(/X-Amz-(Signature|Credential)/);
      // The presigned URL goes only where it must: the Location of a redirect.
      if (location !== undefined) expect(location).toMatch(/X-Amz-Signature=/);
    }
  });

  it("every error answered is one its route declares in the OpenAPI document", async () => {
    const doc = (await (await app.request("/openapi.json")).json()) as {
      paths: Record<
        string,
        Record<
          string,
          {
            responses: Record<
              string,
              {
                content?: {
                  "application/json"?: {
                    schema?: {
                      properties?: { error?: { properties?: { code?: { enum?: string[] } } } };
                    };
                  };
                };
              }
            >;
          }
        >
      >;
    };
    const templates = Object.keys(doc.paths).map((p) => ({
      path: p,
      pattern: new RegExp(`^${p.replace(/\{\w+\}/g, "[^/]+")}$`),
    }));
    const checked = answers.filter((a) => a.status >= 400);
    expect(checked.length).toBeGreaterThan(30);
    for (const a of checked) {
      const [method = "", full = ""] = a.route.split(" ");
      const path = full.split("?")[0] ?? "";
      const template = templates.find((tp) => tp.pattern.test(path));
      if (!template) throw new Error(`no route for ${a.route}`);
      const declared =
        doc.paths[template.path]?.[method.toLowerCase()]?.responses[String(a.status)]?.content?.[
          "application/json"
        ]?.schema?.properties?.error?.properties?.code?.enum ?? [];
      const { code } = (JSON.parse(a.text) as { error: { code: string } }).error;
      expect(declared, `${a.route} → ${a.status} ${code}`).toContain(code);
    }
  });
});
