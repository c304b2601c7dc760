import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { workspaceEvents, workspaces, workspaceTokens } from "../../../lib/db/schema.js";
import { transition } from "../../../lib/workspaces/transition.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";

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

const createExternal = async (name = "agent-1", headers: Record<string, string> = {}) => {
  const res = await t.admin("POST", "/workspaces", { name, runtime: "external" }, headers);
  return {
    res,
    body: (await res.json()) as { workspace: { id: string; status: string }; token?: string },
  };
};

const count = async () => (await t.opened.db.select().from(workspaces)).length;

describe(`workspaces over ${dbKind()}`, () => {
  it("health answers without auth and carries a request id", async () => {
    const res = await t.app.request("/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, version: expect.any(String) });
    expect(res.headers.get("x-request-id")).toMatch(/.+/);
  });

  it("external flow: create → register → heartbeat → delete revokes the token", async () => {
    // Prepare
    const { res, body } = await createExternal();
    expect(res.status).toBe(201);
    expect(body.workspace.status).toBe("awaiting_agent");
    const token = body.token ?? "";
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // Act + Assess
    const reg = await t.as(token, "POST", "/registry/register");
    expect(reg.status).toBe(200);
    expect(await reg.json()).toEqual({ status: "online" });

    const hb = await t.as(token, "POST", "/registry/heartbeat");
    expect(hb.status).toBe(200);
    expect(await hb.json()).toEqual({ status: "online" });

    const got = await t.admin("GET", `/workspaces/${body.workspace.id}`);
    const ws = ((await got.json()) as { workspace: { status: string; lastHeartbeatAt: string } })
      .workspace;
    expect(ws.status).toBe("online");
    expect(ws.lastHeartbeatAt).not.toBeNull();

    const del = await t.admin("DELETE", `/workspaces/${body.workspace.id}`);
    expect(del.status).toBe(200);
    expect(((await del.json()) as { workspace: { status: string } }).workspace.status).toBe(
      "removed",
    );
    expect((await t.as(token, "POST", "/registry/heartbeat")).status).toBe(401);

    const again = await t.admin("DELETE", `/workspaces/${body.workspace.id}`);
    expect(again.status).toBe(200);

    const events = await t.admin("GET", `/workspaces/${body.workspace.id}/events`);
    const list = (
      (await events.json()) as { events: { from: string | null; to: string; actor: string }[] }
    ).events;
    expect(list.map((e) => [e.from, e.to, e.actor])).toEqual([
      [null, "awaiting_agent", "api"],
      ["awaiting_agent", "online", "agent"],
      ["online", "removing", "api"],
      ["removing", "removed", "api"],
    ]);
  });

  it("stores only the token's hash and prefix, and marks it used", async () => {
    const { body } = await createExternal();
    const token = body.token ?? "";
    await t.as(token, "POST", "/registry/heartbeat");
    const [row] = await t.opened.db.select().from(workspaceTokens);
    expect(row?.tokenHash).toMatch(/^[0-9a-f]{64}$/);
    expect(row?.tokenHash).not.toContain(token);
    expect(row?.prefix).toBe(token.slice(0, 8));
    expect(row?.lastUsedAt).toBeInstanceOf(Date);
  });

  it("answers 401 for no token and a wrong token, 403 for a workspace token on admin routes", async () => {
    const { body } = await createExternal();
    expect((await t.as(null, "GET", "/workspaces")).status).toBe(401);
    expect((await t.as("not-a-token", "GET", "/workspaces")).status).toBe(401);
    expect((await t.as("x".repeat(43), "POST", "/registry/heartbeat")).status).toBe(401);
    const res = await t.as(body.token ?? "", "GET", `/workspaces/${body.workspace.id}`);
    expect(res.status).toBe(403);
    const err = (await res.json()) as { error: { code: string; requestId: string } };
    expect(err.error.code).toBe("FORBIDDEN");
    expect(err.error.requestId).toBe(res.headers.get("x-request-id"));
    // The admin token is not a workspace token.
    expect((await t.admin("POST", "/registry/heartbeat")).status).toBe(403);
  });

  it("heartbeat brings an offline workspace back online with one event", async () => {
    const { body } = await createExternal();
    const token = body.token ?? "";
    await t.as(token, "POST", "/registry/register");
    await transition(t.opened.db, {
      ids: [body.workspace.id],
      from: ["online"],
      to: "offline",
      reason: "stale",
      actor: "sweep:external",
    });
    const hb = await t.as(token, "POST", "/registry/heartbeat");
    expect(await hb.json()).toEqual({ status: "online" });
    const evs = await t.opened.db.select().from(workspaceEvents);
    expect(evs.filter((e) => e.from === "offline" && e.to === "online")).toHaveLength(1);
  });

  it("a transition from the wrong status changes nothing and logs nothing", async () => {
    const { body } = await createExternal();
    const changed = await transition(t.opened.db, {
      ids: [body.workspace.id],
      from: ["online"],
      to: "offline",
      reason: "stale",
      actor: "sweep:external",
    });
    expect(changed).toEqual([]);
    const [row] = await t.opened.db.select().from(workspaces);
    expect(row?.status).toBe("awaiting_agent");
    expect(await t.opened.db.select().from(workspaceEvents)).toHaveLength(1);
  });

  it("instance-backed runtimes are stored as provisioning", async () => {
    const res = await t.admin("POST", "/workspaces", { name: "lg", env: { OPENAI_KEY: "s3cret" } });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { workspace: Record<string, unknown>; token?: string };
    expect(body.workspace.status).toBe("provisioning");
    expect(body.workspace.runtime).toBe("langgraph");
    expect(body.workspace.envKeys).toEqual(["OPENAI_KEY"]);
    expect(JSON.stringify(body)).not.toContain("s3cret");
    expect(body.token).toBeUndefined();
  });

  it("Idempotency-Key: same body replays, different body is refused", async () => {
    const key = { "idempotency-key": "k-1" };
    const a = await createExternal("same", key);
    const b = await createExternal("same", key);
    expect(a.res.status).toBe(201);
    expect(b.res.status).toBe(200);
    expect(b.body.workspace.id).toBe(a.body.workspace.id);
    expect(b.body.token).toBeUndefined();
    const c = await createExternal("different", key);
    expect(c.res.status).toBe(409);
    expect((c.body as unknown as { error: { code: string } }).error.code).toBe(
      "IDEMPOTENCY_KEY_REUSED",
    );
    expect(await count()).toBe(1);
  });

  it("20 concurrent creates with one Idempotency-Key make one workspace", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, () => createExternal("dup", { "idempotency-key": "k-20" })),
    );
    const ids = new Set(results.map((r) => r.body.workspace.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.res.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.res.status === 200)).toHaveLength(19);
    expect(await count()).toBe(1);
  });

  it("lists newest first with cursor pagination and a status filter", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await createExternal(`w${i}`)).body.workspace.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${cursor}` : "";
      const res = await t.admin("GET", `/workspaces?limit=2${q}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as {
        workspaces: { id: string }[];
        nextCursor: string | null;
      };
      expect(page.workspaces.length).toBeLessThanOrEqual(2);
      seen.push(...page.workspaces.map((w) => w.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const filtered = await t.admin("GET", "/workspaces?status=online");
    expect(((await filtered.json()) as { workspaces: unknown[] }).workspaces).toEqual([]);
    expect((await t.admin("GET", "/workspaces?cursor=garbage")).status).toBe(400);
    expect((await t.admin("GET", "/workspaces?status=sleeping")).status).toBe(400);
  });

  it("minting a token revokes the others", async () => {
    const { body } = await createExternal();
    const res = await t.admin("POST", `/workspaces/${body.workspace.id}/tokens`);
    expect(res.status).toBe(201);
    const { token } = (await res.json()) as { token: string };
    expect((await t.as(body.token ?? "", "POST", "/registry/heartbeat")).status).toBe(401);
    expect((await t.as(token, "POST", "/registry/heartbeat")).status).toBe(200);
  });

  describe("bad input changes nothing", () => {
    const cases: [string, () => Promise<Response>, number, string][] = [
      [
        "body over 64 KiB",
        () => t.admin("POST", "/workspaces", { name: "x".repeat(70_000) }),
        413,
        "PAYLOAD_TOO_LARGE",
      ],
      [
        "malformed JSON",
        () => t.admin("POST", "/workspaces", "{not json"),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "wrong types",
        () => t.admin("POST", "/workspaces", { name: 42, tier: "big" }),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "unknown field",
        () => t.admin("POST", "/workspaces", { name: "a", color: "red" }),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "unknown runtime",
        () => t.admin("POST", "/workspaces", { name: "a", runtime: "cobol" }),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "unknown tier",
        () => t.admin("POST", "/workspaces", { name: "a", tier: 42 }),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "env with a bad key",
        () => t.admin("POST", "/workspaces", { name: "a", env: { "BAD-KEY": "1" } }),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "env with a shell key",
        () => t.admin("POST", "/workspaces", { name: "a", env: { "A;rm -rf /": "1" } }),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "env over 50 entries",
        () =>
          t.admin("POST", "/workspaces", {
            name: "a",
            env: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`K${i}`, "v"])),
          }),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "env making user-data over 16 KB",
        () =>
          t.admin("POST", "/workspaces", {
            name: "a",
            env: Object.fromEntries(
              Array.from({ length: 10 }, (_, i) => [`K${i}`, "v".repeat(2000)]),
            ),
          }),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "env key __proto__",
        () =>
          t.admin(
            "POST",
            "/workspaces",
            '{"name":"a","runtime":"external","env":{"__proto__":"x"}}',
          ),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "env value with a line break",
        () => t.admin("POST", "/workspaces", { name: "a", env: { A: "1\nB=2" } }),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "env value with a lone surrogate",
        () => t.admin("POST", "/workspaces", '{"name":"a","env":{"A":"\\ud800"}}'),
        400,
        "VALIDATION_FAILED",
      ],
      [
        "unknown workspace id",
        () => t.admin("GET", "/workspaces/00000000-0000-4000-8000-000000000000"),
        404,
        "WORKSPACE_NOT_FOUND",
      ],
      [
        "malformed uuid",
        () => t.admin("GET", "/workspaces/not-a-uuid"),
        404,
        "WORKSPACE_NOT_FOUND",
      ],
      [
        "malformed uuid on delete",
        () => t.admin("DELETE", "/workspaces/'; drop table workspaces; --"),
        404,
        "WORKSPACE_NOT_FOUND",
      ],
      [
        "malformed uuid on events",
        () => t.admin("GET", "/workspaces/123/events"),
        404,
        "WORKSPACE_NOT_FOUND",
      ],
    ];
    for (const [name, call, status, code] of cases) {
      it(`${name} → ${status} ${code}`, async () => {
        const res = await call();
        expect(res.status).toBe(status);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe(code);
        expect(await count()).toBe(0);
      });
    }

    it("validation errors name the failing fields", async () => {
      const res = await t.admin("POST", "/workspaces", { name: 42 });
      const body = (await res.json()) as { error: { fields: { path: string }[] } };
      expect(body.error.fields.map((f) => f.path)).toContain("name");
    });
  });
});
