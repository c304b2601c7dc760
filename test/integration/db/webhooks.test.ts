import { sql } from "drizzle-orm";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { deadlineIn } from "../../../lib/deadline.js";
import type { Deps, Log } from "../../../lib/deps.js";
import { createApp } from "../../../lib/http/app.js";
import { endOperation } from "../../../lib/plugins/records.js";
import { runSweep } from "../../../lib/sweep/run.js";
import { deliverPending } from "../../../lib/webhooks/deliver.js";
import { EVENT_TYPES } from "../../../lib/webhooks/events.js";
import { ADMIN_TOKEN, createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { waitFor } from "../../support/wait.js";
import { type Receiver, startReceiver } from "../../support/webhook-receiver.js";

// Webhooks end to end against a real receiver on loopback: subscribe, change things, and read
// what arrived on the wire (headers, raw body, signature) and what the deliveries route says.

/** Every line the product logs, as text, to search for secrets. */
const logged: string[] = [];
const collecting: Log = {
  debug: (m, ...x) => logged.push(JSON.stringify([m, ...x])),
  info: (m, ...x) => logged.push(JSON.stringify([m, ...x])),
  warn: (m, ...x) => logged.push(JSON.stringify([m, ...x])),
  error: (m, ...x) => logged.push(JSON.stringify([m, ...x])),
};

const FAST_RETRIES = {
  WEBHOOK_ALLOW_PRIVATE: "true",
  WEBHOOK_RETRY_FIRST_DELAY_SECONDS: "0.05",
  WEBHOOK_RETRY_MAX_DELAY_SECONDS: "0.2",
  WEBHOOK_TIMEOUT_SECONDS: "2",
};

let t: TestContext;
let deps: Deps;
let app: ReturnType<typeof createApp>;
let rx: Receiver;

beforeAll(async () => {
  t = await createTestContext({ env: FAST_RETRIES });
  deps = { ...t.deps, log: collecting };
  app = createApp(deps);
  rx = await startReceiver();
});
afterAll(async () => {
  await rx?.close();
  await t?.close();
});
beforeEach(async () => {
  await t.reset();
  rx.received.length = 0;
  rx.answer = () => 200;
  logged.length = 0;
});

async function call(method: string, path: string, body?: unknown, token = ADMIN_TOKEN) {
  const res = await app.request(path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined && { "content-type": "application/json" }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: the answers' shapes are asserted, not typed
  const answer = (text === "" ? null : JSON.parse(text)) as any;
  return { status: res.status, text, body: answer };
}

async function subscribe(events: string[] = ["*"], url = rx.url) {
  const res = await call("POST", "/webhooks", { url, events, description: "test receiver" });
  expect(res.status).toBe(201);
  return res.body as { webhook: { id: string }; secret: string };
}

/** Runs the delivery loop (as the sweep does) until `done`, or fails. */
async function deliverUntil(done: () => boolean, timeoutMs = 5_000) {
  await waitFor(async () => {
    await deliverPending(deps, { deadline: deadlineIn(2_000) });
    return done() ? true : undefined;
  }, timeoutMs);
}

const acked = () => rx.received.filter((r) => r.status < 300);
const typesAcked = () => acked().map((r) => JSON.parse(r.body).type as string);

async function createExternal(name = "agent") {
  const res = await call("POST", "/workspaces", { name, runtime: "external" });
  expect(res.status).toBe(201);
  return res.body as { workspace: { id: string }; token: string };
}

describe(`webhooks over ${dbKind()}`, () => {
  it("delivers every event type once, acknowledged, signed so standardwebhooks verifies it", async () => {
    // Prepare
    const { secret } = await subscribe();
    // Act: created and delivered within the create request itself.
    const ws = await createExternal();
    expect(typesAcked()).toEqual(["workspace.created"]);
    // status_changed, in the agent's request (awaiting_agent → online).
    expect((await call("POST", "/registry/register", {}, ws.token)).status).toBe(200);
    // Plugin outcomes are logged with the record's change (the records layer, as install,
    // uninstall and the sweep end them).
    const id = ws.workspace.id;
    for (const [name, state] of [
      ["ok", "installing"],
      ["bad", "installing"],
    ] as const) {
      await t.opened.db.execute(sql`
        insert into workspace_plugins (workspace_id, name, version, source, digest, state, op_id)
        values (${id}, ${name}, '1.0.0', ${`local://${name}`}, 'd', ${state}, gen_random_uuid())`);
    }
    const opOf = async (name: string) =>
      String(
        (
          (await t.opened.db.execute(
            sql`select op_id from workspace_plugins where workspace_id = ${id} and name = ${name}`,
          )) as unknown as { rows: { op_id: string }[] }
        ).rows[0]?.op_id,
      );
    await endOperation(
      deps.db,
      { workspaceId: id, name: "ok", opId: await opOf("ok") },
      {
        kind: "installed",
      },
    );
    await endOperation(
      deps.db,
      { workspaceId: id, name: "bad", opId: await opOf("bad") },
      {
        kind: "failed",
        error: "exit 3",
      },
    );
    await t.opened.db.execute(sql`
      update workspace_plugins set state = 'uninstalling', op_id = gen_random_uuid()
      where workspace_id = ${id} and name = 'ok'`);
    await endOperation(
      deps.db,
      { workspaceId: id, name: "ok", opId: await opOf("ok") },
      {
        kind: "uninstalled",
      },
    );
    // command.finished: its writer is the commands API; the type travels like any other.
    await t.opened.db.execute(sql`
      insert into workspace_events (workspace_id, type, reason, actor, data)
      values (${id}, 'command.finished', 'finished', 'api', '{"exitCode":0}'::jsonb)`);
    await deliverUntil(() => acked().length >= 6);
    expect((await call("DELETE", `/workspaces/${id}`)).status).toBe(200);

    // Assess: each type exactly once, in the order of the changes, each verified.
    await deliverUntil(() => acked().length >= 8);
    expect(typesAcked()).toEqual([
      "workspace.created",
      "workspace.status_changed",
      "plugin.installed",
      "plugin.failed",
      "plugin.uninstalled",
      "command.finished",
      "workspace.status_changed",
      "workspace.removed",
    ]);
    expect(new Set(typesAcked())).toEqual(new Set(EVENT_TYPES));
    expect(new Set(acked().map((r) => r.id)).size).toBe(8);
    const verifier = new Webhook(secret);
    for (const r of acked()) {
      const payload = verifier.verify(r.body, {
        "webhook-id": r.id,
        "webhook-timestamp": r.timestamp,
        "webhook-signature": r.signature,
      }) as { data: { workspaceId: string } };
      expect(payload.data.workspaceId).toBe(id);
    }
    // A tampered body fails verification: the signature covers it.
    const first = acked()[0];
    expect(() =>
      verifier.verify(`${first?.body} `, {
        "webhook-id": first?.id ?? "",
        "webhook-timestamp": first?.timestamp ?? "",
        "webhook-signature": first?.signature ?? "",
      }),
    ).toThrow();
    const changed = JSON.parse(acked()[1]?.body ?? "{}");
    expect(changed.data).toMatchObject({
      from: "awaiting_agent",
      to: "online",
      actor: "agent",
    });
    const failed = JSON.parse(acked()[3]?.body ?? "{}");
    expect(failed.data).toMatchObject({ plugin: "bad", error: "exit 3" });
  });

  it("a receiver answering 500 twice gets the event on the third try with the same webhook-id", async () => {
    // Prepare
    const { webhook } = await subscribe(["workspace.created"]);
    rx.answer = ({ attempt }) => (attempt <= 2 ? 500 : 204);
    // Act
    const ws = await createExternal();
    await deliverUntil(() => acked().length === 1);
    // Assess
    expect(rx.received.map((r) => r.status)).toEqual([500, 500, 204]);
    expect(new Set(rx.received.map((r) => r.id)).size).toBe(1);
    const list = await call("GET", `/webhooks/${webhook.id}/deliveries`);
    expect(list.status).toBe(200);
    const [d] = list.body.deliveries;
    expect(d).toMatchObject({ state: "delivered", workspaceId: ws.workspace.id });
    expect(d.eventId).toBe(rx.received[0]?.id);
    expect(d.attempts.map((a: { statusCode: number }) => a.statusCode)).toEqual([500, 500, 204]);
    for (const a of d.attempts) expect(a.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it("gives up after the retry period, marks the webhook failing, and a retry sends it again", async () => {
    // Prepare: a period shorter than the first backoff.
    const short = {
      ...deps,
      config: { ...deps.config, webhooks: { ...deps.config.webhooks, retryPeriodMs: 1 } },
    };
    const { webhook } = await subscribe(["workspace.created"]);
    rx.answer = () => 503;
    const shortApp = createApp(short);
    const res = await shortApp.request("/workspaces", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "x", runtime: "external" }),
    });
    expect(res.status).toBe(201);
    // Assess: given up after one attempt, failing.
    const got = await call("GET", `/webhooks/${webhook.id}`);
    expect(got.body.webhook.failing).toBe(true);
    const [d] = (await call("GET", `/webhooks/${webhook.id}/deliveries`)).body.deliveries;
    expect(d.state).toBe("failed");
    // Act: the receiver is fixed; a manual retry sends it again and clears failing.
    rx.answer = () => 200;
    const retried = await call("POST", `/webhooks/${webhook.id}/deliveries/${d.id}/retry`);
    expect(retried.status).toBe(202);
    // Sent by the retry request itself.
    expect(retried.body.delivery.state).toBe("delivered");
    expect(acked()).toHaveLength(1);
    expect((await call("GET", `/webhooks/${webhook.id}`)).body.webhook.failing).toBe(false);
    expect(acked()[0]?.id).toBe(d.eventId);
  });

  it("a slow receiver holds a request only for WEBHOOK_INLINE_SECONDS; the sweep finishes it", async () => {
    // Prepare: requests may spend 0.3 s delivering; the receiver takes 1.5 s to answer.
    const quick = {
      ...deps,
      config: { ...deps.config, webhooks: { ...deps.config.webhooks, inlineMs: 300 } },
    };
    const { webhook } = await subscribe(["workspace.created"]);
    rx.answer = async ({ attempt }) => {
      if (attempt === 1) await new Promise((r) => setTimeout(r, 1_500));
      return 200;
    };
    // Act
    const res = await createApp(quick).request("/workspaces", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "x", runtime: "external" }),
    });
    expect(res.status).toBe(201);
    // Assess: the request's attempt was cut at its bound and left pending, without backoff.
    const [d] = (await call("GET", `/webhooks/${webhook.id}/deliveries`)).body.deliveries;
    expect(d).toMatchObject({ state: "pending", lastStatusCode: null });
    expect(d.lastError).toMatch(/deadline/);
    await runSweep(deps, { budget: { remainingMs: () => 20_000 }, passes: ["webhooks"] });
    const [after] = (await call("GET", `/webhooks/${webhook.id}/deliveries`)).body.deliveries;
    expect(after.state).toBe("delivered");
    expect(after.attempts).toHaveLength(2);
    // The cut attempt's late answer is recorded here, not in the next test.
    await waitFor(() => (rx.received.length === 2 ? true : undefined));
  });

  it("a crash between commit and delivery loses nothing: the next process's sweep delivers", async () => {
    // Prepare: a process that never delivers in its requests (as if it died right after the
    // commit).
    await subscribe();
    const dying = {
      ...deps,
      config: { ...deps.config, webhooks: { ...deps.config.webhooks, inlineMs: 0 } },
    };
    const res = await createApp(dying).request("/workspaces", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "x", runtime: "external" }),
    });
    expect(res.status).toBe(201);
    expect(rx.received).toHaveLength(0);
    // Act: a new process (new deps over the same database) runs the sweep's webhooks pass.
    const next: Deps = { ...deps, log: collecting };
    const summary = await runSweep(next, {
      budget: { remainingMs: () => 20_000 },
      passes: ["webhooks"],
    });
    // Assess
    expect(summary.passes.webhooks.changed).toBe(1);
    expect(typesAcked()).toEqual(["workspace.created"]);
  });

  it("keeps a workspace's order: a later event waits until the earlier one is acknowledged", async () => {
    // Prepare: the first attempt of every event fails, so each waits through a backoff.
    await subscribe();
    rx.answer = ({ attempt }) => (attempt === 1 ? 500 : 200);
    // Act: three events of one workspace, several deliverers at once.
    const ws = await createExternal();
    await call("POST", "/registry/register", {}, ws.token);
    await call("DELETE", `/workspaces/${ws.workspace.id}`);
    await waitFor(async () => {
      await Promise.all([1, 2, 3].map(() => deliverPending(deps, { deadline: deadlineIn(1_000) })));
      return acked().length >= 4 ? true : undefined;
    }, 8_000);
    // Assess: acknowledged in seq order, and no later event was even tried before an earlier
    // one was acknowledged.
    const seqs = [...rx.received]
      .sort((a, b) => a.n - b.n)
      .map((r) => JSON.parse(r.body).data.seq as number);
    expect([...seqs]).toEqual([...seqs].sort((a, b) => a - b));
    expect(typesAcked()).toEqual([
      "workspace.created",
      "workspace.status_changed",
      "workspace.status_changed",
      "workspace.removed",
    ]);
  });

  it("subscribes only to the types asked for; the secret is never shown again nor logged", async () => {
    // Prepare
    const { webhook, secret } = await subscribe(["workspace.removed"]);
    const ws = await createExternal();
    await call("DELETE", `/workspaces/${ws.workspace.id}`);
    await deliverUntil(() => acked().length === 1);
    // Assess
    expect(typesAcked()).toEqual(["workspace.removed"]);
    const later = [
      await call("GET", "/webhooks"),
      await call("GET", `/webhooks/${webhook.id}`),
      await call("GET", `/webhooks/${webhook.id}/deliveries`),
      await call("PATCH", `/webhooks/${webhook.id}`, { description: "renamed" }),
    ];
    const stored = await t.opened.db.execute(sql`select * from webhooks`);
    for (const text of [
      ...later.map((r) => r.text),
      ...logged,
      JSON.stringify(stored),
      ...rx.received.map((r) => JSON.stringify([r.headers, r.body])),
    ]) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(secret.slice("whsec_".length));
      expect(text).not.toContain(ADMIN_TOKEN);
      expect(text).not.toContain(ws.token);
    }
    // Rotation: a new secret, shown once; later deliveries are signed with it.
    const rotated = await call("POST", `/webhooks/${webhook.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).not.toBe(secret);
    const ws2 = await createExternal("second");
    await call("DELETE", `/workspaces/${ws2.workspace.id}`);
    await deliverUntil(() => acked().length === 2);
    const last = acked()[1];
    const headers = {
      "webhook-id": last?.id ?? "",
      "webhook-timestamp": last?.timestamp ?? "",
      "webhook-signature": last?.signature ?? "",
    };
    expect(() => new Webhook(rotated.body.secret).verify(last?.body ?? "", headers)).not.toThrow();
    expect(() => new Webhook(secret).verify(last?.body ?? "", headers)).toThrow();
  });

  it("CRUD answers: 404 for unknown ids, 400 for bad bodies, DELETE removes deliveries", async () => {
    const missing = "00000000-0000-4000-8000-000000000000";
    expect((await call("GET", `/webhooks/${missing}`)).body.error.code).toBe("WEBHOOK_NOT_FOUND");
    expect((await call("GET", "/webhooks/not-a-uuid")).status).toBe(404);
    expect((await call("PATCH", `/webhooks/${missing}`, { events: ["*"] })).status).toBe(404);
    expect((await call("DELETE", `/webhooks/${missing}`)).status).toBe(404);
    expect((await call("POST", `/webhooks/${missing}/rotate-secret`)).status).toBe(404);
    const bad = await call("POST", "/webhooks", { url: rx.url, events: ["nope"] });
    expect(bad.body.error.code).toBe("VALIDATION_FAILED");
    expect((await call("POST", "/webhooks", { url: rx.url, events: [] })).status).toBe(400);
    const { webhook } = await subscribe();
    await createExternal();
    const page = await call("GET", `/webhooks/${webhook.id}/deliveries`);
    const [d] = page.body.deliveries;
    expect(
      (await call("POST", `/webhooks/${webhook.id}/deliveries/${missing}/retry`)).body.error.code,
    ).toBe("WEBHOOK_DELIVERY_NOT_FOUND");
    expect((await call("GET", `/webhooks/${webhook.id}/deliveries?cursor=zzz`)).status).toBe(400);
    expect((await call("DELETE", `/webhooks/${webhook.id}`)).status).toBe(204);
    expect((await call("POST", `/webhooks/${webhook.id}/deliveries/${d.id}/retry`)).status).toBe(
      404,
    );
    const left = await t.opened.db.execute(sql`select count(*)::int as n from webhook_deliveries`);
    expect(Number((left as unknown as { rows: { n: number }[] }).rows[0]?.n)).toBe(0);
  });

  it("pages deliveries exactly, newest first", async () => {
    const { webhook } = await subscribe();
    for (let i = 0; i < 5; i++) await createExternal(`w${i}`);
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor === null ? "" : `&cursor=${cursor}`;
      const page = await call("GET", `/webhooks/${webhook.id}/deliveries?limit=2${q}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.deliveries.map((d: { seq: number }) => d.seq));
      cursor = page.body.nextCursor;
    } while (cursor !== null);
    expect(seen).toHaveLength(5);
    expect(seen).toEqual([...seen].sort((a, b) => b - a));
  });
});
