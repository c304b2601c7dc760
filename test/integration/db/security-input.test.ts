import { randomUUID } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  pluginAllowlist,
  workspaceEvents,
  workspacePlugins,
  workspaces,
  workspaceTokens,
} from "../../../lib/db/schema.js";
import { ADMIN_TOKEN, createTestContext, dbKind, type TestContext } from "../../support/context.js";
import {
  githubTarball,
  type PluginSpec,
  startTarballServer,
  type TarballServer,
} from "../../support/plugin-fixtures.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// SPEC §11, every row reachable through the API: each bad input gets its answer and changes
// nothing — no row, no event, no instance, no command. The local cloud stands in for AWS, and
// an instance-backed workspace with a running instance is the target wherever a request could
// end in a command, so "nothing was sent" is a real observation, not the absence of an instance.

let c: ComputeCloud;
let t: TestContext;
let github: TarballServer;
/** Tarballs the loopback GITHUB_TARBALL_BASE serves, by request path. */
const tarballs = new Map<string, Buffer>();

beforeAll(async () => {
  c = await startComputeCloud({ bootDelayMs: 20, ssmOnlineDelayMs: 20 });
  github = await startTarballServer((req, res) => {
    const body = tarballs.get(req.url ?? "");
    res.writeHead(body ? 200 : 404);
    res.end(body ?? "missing");
  });
  t = await createTestContext({
    env: { GITHUB_TARBALL_BASE: github.url, INSTALL_SYNC_WAIT_SECONDS: "10" },
    aws: c.clients({ maxAttempts: 2, requestTimeoutMs: 3_000 }),
  });
});
afterAll(async () => {
  await t?.close();
  await github?.close();
  await c?.close();
});
beforeEach(async () => {
  await t.reset();
  await c.resetStats();
});

const MAX_BODY = 64 * 1024;

interface ErrorJson {
  error: { code: string; message: string; requestId: string; fields?: { path: string }[] };
}

/** Status and error code of a response, with the API's error shape checked on the way. */
async function outcome(res: Response): Promise<{ status: number; code: string | null }> {
  const text = await res.text();
  if (res.status < 400) return { status: res.status, code: null };
  const body = JSON.parse(text) as ErrorJson;
  expect(body.error.requestId).toBe(res.headers.get("x-request-id"));
  expect(text).not.toContain(ADMIN_TOKEN);
  return { status: res.status, code: body.error.code };
}

/** Everything a refused request must leave as it was, the local cloud's side included. */
async function fingerprint() {
  const db = t.opened.db;
  const [ws, tokens, plugins, events, allow, calls] = await Promise.all([
    db.select().from(workspaces),
    db.select().from(workspaceTokens),
    db.select().from(workspacePlugins),
    db.select().from(workspaceEvents),
    db.select().from(pluginAllowlist),
    c.stats(),
  ]);
  return {
    workspaces: ws
      .map((w) => `${w.id} ${w.status} g${w.generation} ${w.updatedAt.toISOString()}`)
      .sort(),
    tokens: tokens.map((k) => `${k.id} revoked=${k.revokedAt !== null}`).sort(),
    workspacePlugins: plugins.map((p) => `${p.name} ${p.state} ${p.digest}`).sort(),
    events: events.length,
    allowlist: allow.map((a) => a.name).sort(),
    // Anything that changes the cloud; reads (the running check) may happen.
    writes: Object.entries(calls)
      .filter(([k]) => /RunInstances|TerminateInstances|SendCommand|PutObject|CreateTags/.test(k))
      .sort(),
  };
}

async function request(
  method: string,
  path: string,
  init: { body?: RequestInit["body"]; headers?: Record<string, string>; duplex?: "half" } = {},
) {
  return t.app.request(path, {
    method,
    ...init,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...init.headers },
  });
}

const json = { "content-type": "application/json" };

/** An instance-backed workspace whose instance runs with its SSM agent online. */
async function runningWorkspace(): Promise<{ id: string; instanceId: string; dir: string }> {
  const res = await t.admin("POST", "/workspaces", { name: "target" });
  expect(res.status).toBe(201);
  const ws = ((await res.json()) as { workspace: { id: string; instanceId: string | null } })
    .workspace;
  const instanceId = ws.instanceId ?? "";
  const view = await waitFor(async () => {
    const v = await c.instance(instanceId);
    return v.state === "running" && v.ssmPingStatus === "Online" ? v : undefined;
  });
  return { id: ws.id, instanceId, dir: view.dir };
}

/** The running workspace with code-review installed: a command was sent, and one can be again. */
async function workspaceWithPlugin() {
  const ws = await runningWorkspace();
  const res = await t.admin("POST", `/workspaces/${ws.id}/plugins`, {
    source: "local://code-review",
  });
  expect(res.status).toBe(200);
  expect(await c.calls("ssm:SendCommand")).toBe(1);
  return ws;
}

/** A create body of exactly `bytes` bytes that the API accepts when it is let through. */
function createBodyOf(bytes: number): string {
  const env: Record<string, string> = {};
  for (let i = 0; i < 49; i++) env[`V${String(i).padStart(2, "0")}`] = "x".repeat(4096);
  let over = JSON.stringify({ name: "big", runtime: "external", env }).length - bytes;
  expect(over).toBeGreaterThanOrEqual(0);
  // Shorten values from the last one until the body has the length asked for.
  for (const key of Object.keys(env).reverse()) {
    const cut = Math.min(over, 4096);
    env[key] = "x".repeat(4096 - cut);
    over -= cut;
  }
  const body = JSON.stringify({ name: "big", runtime: "external", env });
  expect(Buffer.byteLength(body)).toBe(bytes);
  return body;
}

/** A body as a stream without a content-length: what a chunked upload looks like. */
function chunked(text: string, chunkBytes = 8 * 1024): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.subarray(offset, offset + chunkBytes));
      offset += chunkBytes;
    },
  });
}

type Framing = "content-length" | "chunked" | "lying content-length";

function send(method: string, path: string, body: string, framing: Framing) {
  switch (framing) {
    case "content-length":
      return request(method, path, {
        body,
        headers: { ...json, "content-length": String(Buffer.byteLength(body)) },
      });
    case "chunked":
      return request(method, path, { body: chunked(body), headers: json, duplex: "half" });
    case "lying content-length":
      return request(method, path, { body, headers: { ...json, "content-length": "100" } });
    default: {
      const unreachable: never = framing;
      throw new Error(`unknown framing ${String(unreachable)}`);
    }
  }
}

const framings: Framing[] = ["content-length", "chunked", "lying content-length"];

describe(`SPEC §11 bad input over ${dbKind()}`, () => {
  describe("bodies over 64 KiB → 413 PAYLOAD_TOO_LARGE", () => {
    it.each(framings)("refuses 64 KiB + 1 on every body route, framed by %s", async (framing) => {
      // Prepare
      const ws = await runningWorkspace();
      const before = await fingerprint();
      const oversized = [
        ["POST", "/workspaces", createBodyOf(MAX_BODY + 1)],
        ["PUT", "/plugins/allowlist", JSON.stringify({ names: namesOf(MAX_BODY + 1) })],
        [
          "POST",
          `/workspaces/${ws.id}/plugins`,
          JSON.stringify({ source: "local://code-review", pad: "x".repeat(MAX_BODY) }),
        ],
      ] as const;

      // Act
      const results = [];
      for (const [method, path, body] of oversized) {
        expect(Buffer.byteLength(body)).toBeGreaterThan(MAX_BODY);
        results.push([method, await outcome(await send(method, path, body, framing))]);
      }

      // Assess
      expect(results).toEqual(
        oversized.map(([method]) => [method, { status: 413, code: "PAYLOAD_TOO_LARGE" }]),
      );
      expect(await fingerprint()).toEqual(before);
    });

    it.each(["content-length", "chunked"] as const)(
      "accepts exactly 64 KiB, framed by %s",
      async (framing) => {
        const res = await send("POST", "/workspaces", createBodyOf(MAX_BODY), framing);
        expect(res.status).toBe(201);
        expect(await t.opened.db.select().from(workspaces)).toHaveLength(1);
      },
    );

    it("refuses an oversized body before authentication too, and writes nothing", async () => {
      const before = await fingerprint();
      const res = await t.app.request("/workspaces", {
        method: "POST",
        headers: json,
        body: chunked(createBodyOf(MAX_BODY + 1)),
        duplex: "half",
      });
      expect([401, 413]).toContain(res.status);
      expect(await fingerprint()).toEqual(before);
    });
  });

  describe("malformed JSON and wrong types → 400 VALIDATION_FAILED", () => {
    const malformed: [string, string][] = [
      ["an open brace", "{"],
      ["a trailing comma", '{"name":"x",}'],
      ["a bare word", "nul"],
      ["trailing garbage", '{"name":"x","runtime":"external"} x'],
      ["single quotes", "{'name':'x'}"],
      ["an empty body", ""],
      ["a NUL byte", "\u0000"],
      ["arrays nested 30,000 deep", `${"[".repeat(30_000)}${"]".repeat(30_000)}`],
    ];

    it("refuses malformed JSON on every body route", async () => {
      // Prepare
      const ws = await runningWorkspace();
      const before = await fingerprint();
      const routes = [
        ["POST", "/workspaces"],
        ["PUT", "/plugins/allowlist"],
        ["POST", `/workspaces/${ws.id}/plugins`],
      ] as const;

      // Act
      const wrong: string[] = [];
      for (const [method, path] of routes) {
        for (const [label, body] of malformed) {
          const got = await outcome(await request(method, path, { body, headers: json }));
          if (got.status !== 400 || got.code !== "VALIDATION_FAILED") {
            wrong.push(`${method} ${path} with ${label} → ${got.status} ${got.code}`);
          }
        }
      }

      // Assess
      expect(wrong).toEqual([]);
      expect(await fingerprint()).toEqual(before);
    });

    it("refuses a body that is not declared JSON", async () => {
      const before = await fingerprint();
      const body = JSON.stringify({ name: "x", runtime: "external" });
      const contentTypes: Record<string, string>[] = [
        {},
        { "content-type": "text/plain" },
        { "content-type": "application/x-www-form-urlencoded" },
      ];
      for (const headers of contentTypes) {
        const got = await outcome(await request("POST", "/workspaces", { body, headers }));
        expect(got).toEqual({ status: 400, code: "VALIDATION_FAILED" });
      }
      expect(await fingerprint()).toEqual(before);
    });

    it("refuses wrong types and unknown fields, naming the field", async () => {
      // Prepare
      const ws = await runningWorkspace();
      const before = await fingerprint();
      const cases: [string, string, unknown, string][] = [
        ["POST", "/workspaces", { name: 5 }, "name"],
        ["POST", "/workspaces", { name: "x", tier: "1" }, "tier"],
        ["POST", "/workspaces", { name: "x", tier: 1.5 }, "tier"],
        ["POST", "/workspaces", { name: "x", runtime: ["external"] }, "runtime"],
        ["POST", "/workspaces", { name: "x", env: [] }, "env"],
        ["POST", "/workspaces", { name: "x", env: { K: 1 } }, "env.K"],
        ["POST", "/workspaces", { name: "x", admin: true }, "(body)"],
        ["POST", "/workspaces", { name: "" }, "name"],
        ["POST", "/workspaces", { name: "a\u0007b" }, "name"],
        ["POST", "/workspaces", [], "(body)"],
        ["POST", "/workspaces", null, "(body)"],
        ["PUT", "/plugins/allowlist", { names: "code-review" }, "names"],
        ["PUT", "/plugins/allowlist", { names: [1] }, "names.0"],
        ["PUT", "/plugins/allowlist", {}, "names"],
        ["POST", `/workspaces/${ws.id}/plugins`, { source: 5 }, "source"],
        ["POST", `/workspaces/${ws.id}/plugins`, {}, "source"],
        ["POST", `/workspaces/${ws.id}/plugins`, { source: "local://x", sha256: 1 }, "sha256"],
        ["POST", `/workspaces/${ws.id}/plugins`, { source: "local://x", force: true }, "(body)"],
      ];

      // Act
      const wrong: string[] = [];
      for (const [method, path, body, field] of cases) {
        const res = await request(method, path, { body: JSON.stringify(body), headers: json });
        const text = await res.text();
        const err = (JSON.parse(text) as Partial<ErrorJson>).error;
        const fields = err?.fields?.map((f) => f.path) ?? [];
        if (res.status !== 400 || err?.code !== "VALIDATION_FAILED" || !fields.includes(field)) {
          wrong.push(`${method} ${JSON.stringify(body)} → ${res.status} ${text.slice(0, 200)}`);
        }
      }

      // Assess
      expect(wrong).toEqual([]);
      expect(await fingerprint()).toEqual(before);
    });
  });

  describe("lone surrogates and cursors → 400 VALIDATION_FAILED naming the field", () => {
    it("refuses a lone surrogate in any string field of a body (jsonb refuses it; text would store U+FFFD)", async () => {
      // Prepare
      const ws = await runningWorkspace();
      const before = await fingerprint();
      const cases: [string, string, unknown, string][] = [
        ["POST", "/workspaces", { name: "a\ud800b", runtime: "external" }, "name"],
        ["POST", "/workspaces", { name: "\udc00" }, "name"],
        ["POST", "/workspaces", { name: "x", runtime: "external", env: { A: "\ud800" } }, "env.A"],
        ["POST", "/workspaces", { name: "x", env: { A: "ok\udfff" } }, "env.A"],
        ["POST", "/workspaces", { name: "x", runtime: "external\ud800" }, "runtime"],
        ["PUT", "/plugins/allowlist", { names: ["code-review\ud800"] }, "names.0"],
        ["POST", `/workspaces/${ws.id}/plugins`, { source: "local://code-review\ud800" }, "source"],
        [
          "POST",
          `/workspaces/${ws.id}/plugins`,
          { source: "local://code-review", sha256: "\ud800".repeat(64) },
          "sha256",
        ],
      ];

      // Act
      const wrong: string[] = [];
      for (const [method, path, body, field] of cases) {
        // JSON.stringify writes a lone surrogate as the escape \ud800, as a client would send it.
        const text = JSON.stringify(body);
        expect(text).toMatch(/\\ud[89a-f][0-9a-f]{2}/);
        const res = await request(method, path, { body: text, headers: json });
        const answer = await res.text();
        const err = (JSON.parse(answer) as Partial<ErrorJson>).error;
        const fields = err?.fields?.map((f) => f.path) ?? [];
        if (res.status !== 400 || err?.code !== "VALIDATION_FAILED" || !fields.includes(field)) {
          wrong.push(`${method} ${path} ${field} → ${res.status} ${answer.slice(0, 200)}`);
        }
      }

      // Assess
      expect(wrong).toEqual([]);
      expect(await fingerprint()).toEqual(before);
      expect(await c.calls("ssm:SendCommand")).toBe(0);
    });

    it("keeps a name with a well-formed surrogate pair (an emoji) exactly", async () => {
      const res = await t.admin("POST", "/workspaces", { name: "agent 🙂", runtime: "external" });
      expect(res.status).toBe(201);
      const { id } = ((await res.json()) as { workspace: { id: string } }).workspace;
      const got = (await (await t.admin("GET", `/workspaces/${id}`)).json()) as {
        workspace: { name: string };
      };
      expect(got.workspace.name).toBe("agent 🙂");
    });

    it("refuses a cursor it did not issue, or one out of range, on both lists", async () => {
      // Prepare: two workspaces, one with two events, so both lists have a next page.
      await t.admin("POST", "/workspaces", { name: "first", runtime: "external" });
      const created = await t.admin("POST", "/workspaces", { name: "paged", runtime: "external" });
      const { workspace, token } = (await created.json()) as {
        workspace: { id: string };
        token: string;
      };
      const id = workspace.id;
      expect((await t.as(token, "POST", "/registry/register")).status).toBe(200);
      const before = await fingerprint();
      const b64 = (text: string) => Buffer.from(text).toString("base64url");
      const uuid = "00000000-0000-4000-8000-000000000000";
      const cursors = [
        "garbage",
        "%00",
        b64(`+275760-09-13T00:00:00.000Z|${uuid}`),
        b64(`2026-01-01T00:00:00.000Z|${uuid}`),
        b64(`w|9007199254740992|${uuid}`),
        b64(`w|99999999999999999999|${uuid}`),
        b64(`w|-1|${uuid}`),
        b64("w|1700000000000000|not-a-uuid"),
        b64(`w|1700000000000000|${uuid}|extra`),
        b64("e|0"),
        b64("e|-5"),
        b64("e|9223372036854775808"),
        b64("e|1.5"),
        b64("e|\ud800"),
      ];

      // Act
      const wrong: string[] = [];
      for (const path of ["/workspaces", `/workspaces/${id}/events`]) {
        for (const cursor of cursors) {
          const res = await request("GET", `${path}?limit=1&cursor=${encodeURIComponent(cursor)}`);
          const answer = await res.text();
          const err = (JSON.parse(answer) as Partial<ErrorJson>).error;
          const fields = err?.fields?.map((f) => f.path) ?? [];
          if (
            res.status !== 400 ||
            err?.code !== "VALIDATION_FAILED" ||
            !fields.includes("cursor")
          ) {
            wrong.push(`${path} ${cursor} → ${res.status} ${answer.slice(0, 160)}`);
          }
        }
      }
      // One list's cursor is not the other's.
      const nextOf = async (path: string) => {
        const page = (await (await request("GET", path)).json()) as { nextCursor: string | null };
        expect(page.nextCursor).not.toBeNull();
        return page.nextCursor ?? "";
      };
      const workspaceCursor = await nextOf("/workspaces?limit=1");
      const eventCursor = await nextOf(`/workspaces/${id}/events?limit=1`);
      const crossed = [
        (await request("GET", `/workspaces/${id}/events?cursor=${workspaceCursor}`)).status,
        (await request("GET", `/workspaces?cursor=${eventCursor}`)).status,
      ];

      // Assess
      expect(wrong).toEqual([]);
      expect(crossed).toEqual([400, 400]);
      expect(await fingerprint()).toEqual(before);
    });
  });

  describe("plugin names → 400 INVALID_PLUGIN_NAME", () => {
    const badNames = [
      "a/b",
      "../../etc",
      "a..b",
      "my plugin",
      "Code-Review",
      "x".repeat(129),
      "-lead",
      ".hidden",
      "_under",
      "café",
      "a\u0000b",
      "a;rm -rf .",
      "$(id)",
      "{{ssm:x}}",
      "",
    ];

    it("refuses them in the path of uninstall and download, and in install sources and the allowlist", async () => {
      // Prepare
      const ws = await workspaceWithPlugin();
      await c.resetStats();
      const before = await fingerprint();

      // Act
      const wrong: string[] = [];
      const expect400 = async (label: string, res: Response) => {
        const got = await outcome(res);
        if (got.status !== 400 || got.code !== "INVALID_PLUGIN_NAME") {
          wrong.push(`${label} → ${got.status} ${got.code}`);
        }
      };
      for (const name of badNames) {
        const enc = encodeURIComponent(name);
        if (name !== "") {
          await expect400(
            `DELETE ${JSON.stringify(name)}`,
            await request("DELETE", `/workspaces/${ws.id}/plugins/${enc}`),
          );
          await expect400(
            `download ${JSON.stringify(name)}`,
            await request("GET", `/workspaces/${ws.id}/plugins/${enc}/download`),
          );
        }
        for (const source of [`local://${name}`, ...(name.includes("/") ? [] : [name])]) {
          if (source === "") continue;
          await expect400(
            `install ${JSON.stringify(source)}`,
            await t.admin("POST", `/workspaces/${ws.id}/plugins`, { source }),
          );
        }
        await expect400(
          `allowlist ${JSON.stringify(name)}`,
          await t.admin("PUT", "/plugins/allowlist", { names: ["code-review", name] }),
        );
      }

      // Assess
      expect(wrong).toEqual([]);
      expect(await fingerprint()).toEqual(before);
      expect(await c.calls("ssm:SendCommand")).toBe(0);
      expect((await stat(join(ws.dir, "configs/plugins/code-review"))).isDirectory()).toBe(true);
    });

    it("'.' and '..' as a whole path segment never reach a route that acts", async () => {
      // The URL parser resolves dot segments (also %2E%2E) before routing, so these name no
      // plugin route at all, or another one by a method it does not serve (GET …/plugins/download
      // is a plugin named "download": 405); what matters is that nothing is uninstalled or removed.
      const ws = await workspaceWithPlugin();
      await c.resetStats();
      const before = await fingerprint();
      for (const seg of [".", "..", "%2E", "%2E%2E", "%2e%2e", ".%2E"]) {
        for (const [method, path] of [
          ["DELETE", `/workspaces/${ws.id}/plugins/${seg}`],
          ["GET", `/workspaces/${ws.id}/plugins/${seg}/download`],
        ] as const) {
          const got = await outcome(await request(method, path));
          expect([400, 404, 405]).toContain(got.status);
        }
      }
      expect(await fingerprint()).toEqual(before);
      expect((await t.admin("GET", `/workspaces/${ws.id}`)).status).toBe(200);
    });
  });

  describe("{{ssm:…}} and NUL in a value that reaches a script → 400, never sent", () => {
    it("refuses them in install sources and digests, and in uninstall names", async () => {
      // Prepare
      const ws = await workspaceWithPlugin();
      await c.resetStats();
      const before = await fingerprint();
      const fetched = github.requests.length;
      const bodies = [
        { source: "local://{{ssm:/prod/db-password}}" },
        { source: "{{ssm:/prod/db-password}}" },
        { source: "{{ssm-secure:/prod/db-password}}" },
        { source: "github://acme/plugins#{{ssm:/prod/db-password}}" },
        { source: "github://acme/{{ssm:x}}#v1" },
        { source: "github://{{ssm:x}}/plugins#v1" },
        { source: "local://code-review\u0000" },
        { source: "github://acme/plugins#v1\u0000; rm -rf /" },
        { source: "local://code-review", sha256: `{{ssm:x}}${"0".repeat(55)}` },
        { source: "local://code-review", sha256: `${"0".repeat(63)}\u0000` },
      ];

      // Act
      const answers = [];
      for (const body of bodies) {
        answers.push(
          (await outcome(await t.admin("POST", `/workspaces/${ws.id}/plugins`, body))).status,
        );
      }
      const uninstall = await outcome(
        await request("DELETE", `/workspaces/${ws.id}/plugins/${encodeURIComponent("{{ssm:x}}")}`),
      );

      // Assess
      expect(answers).toEqual(bodies.map(() => 400));
      expect(uninstall).toEqual({ status: 400, code: "INVALID_PLUGIN_NAME" });
      expect(await fingerprint()).toEqual(before);
      expect(await c.calls("ssm:SendCommand")).toBe(0);
      expect(github.requests.length).toBe(fetched);
    });

    it("refuses a fetched manifest whose name or skills carry {{ (422, never sent)", async () => {
      // Prepare
      const ws = await runningWorkspace();
      const before = await fingerprint();
      const specs: [string, PluginSpec][] = [
        ["bad-name", { name: '"{{ssm:/prod/db-password}}"' }],
        ["bad-skill", { name: "fine", skills: ['"{{ssm:x}}"'] }],
      ];
      for (const [repo, spec] of specs)
        tarballs.set(`/acme/${repo}/tar.gz/v1`, githubTarball(spec));

      // Act
      const got = [];
      for (const [repo] of specs) {
        const res = await t.admin("POST", `/workspaces/${ws.id}/plugins`, {
          source: `github://acme/${repo}#v1`,
        });
        got.push(await outcome(res));
      }

      // Assess
      expect(got).toEqual(specs.map(() => ({ status: 422, code: "INVALID_MANIFEST" })));
      expect(await fingerprint()).toEqual(before);
      expect(await c.calls("ssm:SendCommand")).toBe(0);
    });

    it("installs a plugin whose files and description hold {{ }}: they never reach the script", async () => {
      // Prepare
      const ws = await runningWorkspace();
      const text = "Use {{ssm:/prod/db-password}} and {{ .Name }} literally; $(id) `id` it's";
      tarballs.set(
        "/acme/templated/tar.gz/v1",
        githubTarball({
          name: "templated",
          manifest: `name: templated\nversion: "1.0.0"\ndescription: '${text.replaceAll("'", "''")}'\n`,
          files: { "prompt.txt": text },
        }),
      );

      // Act
      const res = await t.admin("POST", `/workspaces/${ws.id}/plugins`, {
        source: "github://acme/templated#v1",
      });

      // Assess
      expect(res.status).toBe(200);
      expect(await c.calls("ssm:SendCommand")).toBe(1);
      const installed = join(ws.dir, "configs/plugins/templated/prompt.txt");
      expect(await readFile(installed, "utf8")).toBe(text);
    });

    it("creates a workspace whose env holds {{ssm:…}}: the env file keeps it literally", async () => {
      // Prepare
      const env = {
        PROMPT: '{{ssm:/prod/db-password}} it\'s "quoted" $(touch pwned) `touch pwned2` $HOME',
        TEMPLATE: "{{ .Name }}",
      };

      // Act
      const res = await t.admin("POST", "/workspaces", { name: "templated-env", env });

      // Assess
      expect(res.status).toBe(201);
      const ws = ((await res.json()) as { workspace: { id: string; instanceId: string } })
        .workspace;
      expect(ws.instanceId).toMatch(/^i-/);
      const dir = (await c.instance(ws.instanceId)).dir;
      const envFile = await waitFor(async () => {
        const text = await readFile(join(dir, "workspace.env"), "utf8").catch(() => "");
        return text.includes("WORKSPACE_TOKEN=") ? text : undefined;
      });
      const lines = envFile.split("\n");
      expect(lines).toContain(`PROMPT=${env.PROMPT}`);
      expect(lines).toContain(`TEMPLATE=${env.TEMPLATE}`);
      await expect(stat(join(dir, "pwned"))).rejects.toThrow(/ENOENT/);
      await expect(stat(join(dir, "pwned2"))).rejects.toThrow(/ENOENT/);
      // The env goes in the user-data, never over SSM.
      expect(await c.calls("ssm:SendCommand")).toBe(0);
    });
  });

  describe("env → 400", () => {
    const entries = (n: number, value = "v") =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`K${i}`, value]));

    it("refuses bad keys, bad values, more than 50 entries and user-data over 16 KB", async () => {
      // Prepare
      const before = await fingerprint();
      const envs: [string, Record<string, string>][] = [
        ["a key starting with a digit", { "1ABC": "v" }],
        ["a key with a dash", { "A-B": "v" }],
        ["a key with a space", { "A B": "v" }],
        ["an empty key", { "": "v" }],
        ["a key with =", { "A=B": "v" }],
        ["a non-ASCII key", { É: "v" }],
        ["a key with a newline", { "A\nB": "v" }],
        ["a 129-character key", { [`K${"x".repeat(128)}`]: "v" }],
        ["a value with a newline", { A: "line\nINJECTED=1" }],
        ["a value with a carriage return", { A: "a\rb" }],
        ["a value with NUL", { A: "a\u0000b" }],
        ["a lone surrogate", { A: "\ud800" }],
        ["51 entries", entries(51)],
        ["user-data over 16 KB", entries(4, "x".repeat(4096))],
      ];

      // Act
      const wrong: string[] = [];
      for (const [label, env] of envs) {
        const got = await outcome(await t.admin("POST", "/workspaces", { name: "env", env }));
        if (got.status !== 400 || got.code !== "VALIDATION_FAILED") {
          wrong.push(`${label} → ${got.status} ${got.code}`);
        }
      }

      // Assess
      expect(wrong).toEqual([]);
      expect(await fingerprint()).toEqual(before);
      expect(await c.calls("ec2:RunInstances")).toBe(0);
    });

    it("accepts 50 entries", async () => {
      const res = await t.admin("POST", "/workspaces", { name: "env", env: entries(50) });
      expect(res.status).toBe(201);
    });
  });

  describe("unknown and malformed workspace ids → 404, never 500", () => {
    const VALID_BODIES: Record<string, unknown> = {
      "POST /workspaces/{id}/commands": { argv: ["true"] },
    };
    const ids = [
      randomUUID(),
      "00000000-0000-0000-0000-000000000000",
      "not-a-uuid",
      "' OR '1'='1",
      "1; DROP TABLE workspaces; --",
      "00000000-0000-0000-0000-000000000000' OR 1=1 --",
      "\u0000",
      "%",
      "x".repeat(2_000),
      "🙂",
    ];

    it("answers 404 WORKSPACE_NOT_FOUND on every route about a workspace", async () => {
      // Prepare: a real workspace, so "nothing changed" has something to change.
      const ws = await workspaceWithPlugin();
      await c.resetStats();
      const before = await fingerprint();
      const doc = (await (await t.app.request("/openapi.json")).json()) as {
        paths: Record<string, Record<string, { requestBody?: unknown }>>;
      };
      const routes = Object.entries(doc.paths)
        .filter(([path]) => path.includes("{id}"))
        .flatMap(([path, ops]) =>
          Object.entries(ops).map(([m, op]) => ({ method: m.toUpperCase(), path, op })),
        );
      expect(routes.length).toBeGreaterThanOrEqual(11);

      // Act
      const wrong: string[] = [];
      for (const route of routes) {
        for (const id of ids) {
          // A request each route would accept but for its id.
          const path =
            route.path
              .replace("{id}", encodeURIComponent(id))
              .replace("{name}", "code-review")
              .replace("{commandId}", randomUUID()) +
            (route.path.endsWith("/wait") ? "?status=online&timeoutSeconds=0" : "");
          // A valid body: bad input is refused before the workspace is looked up.
          const valid =
            VALID_BODIES[`${route.method} ${route.path}`] ??
            (route.path.endsWith("/plugins")
              ? { source: "local://code-review" }
              : route.method === "PATCH"
                ? { name: "renamed" }
                : {});
          const body =
            route.op.requestBody === undefined
              ? {}
              : { body: JSON.stringify(valid), headers: json };
          const got = await outcome(await request(route.method, path, body));
          if (got.status !== 404 || got.code !== "WORKSPACE_NOT_FOUND") {
            wrong.push(
              `${route.method} ${route.path} id=${id.slice(0, 40)} → ${got.status} ${got.code}`,
            );
          }
        }
      }

      // Assess
      expect(wrong).toEqual([]);
      expect(await fingerprint()).toEqual(before);
      expect((await t.admin("GET", `/workspaces/${ws.id}`)).status).toBe(200);
    });
  });
});

/** Valid plugin names filling at least `bytes` of JSON, at most 1,000 of them. */
function namesOf(bytes: number): string[] {
  const names: string[] = [];
  for (let i = 0; JSON.stringify({ names }).length <= bytes; i++) {
    names.push(`plugin-${String(i).padStart(4, "0")}-${"x".repeat(100)}`);
  }
  expect(names.length).toBeLessThanOrEqual(1000);
  return names;
}
