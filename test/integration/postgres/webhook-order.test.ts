import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deadlineIn } from "../../../lib/deadline.js";
import type { Deps } from "../../../lib/deps.js";
import { deliverPending } from "../../../lib/webhooks/deliver.js";
import { transition } from "../../../lib/workspaces/transition.js";
import { createTestContext, type TestContext } from "../../support/context.js";
import { type Receiver, startReceiver } from "../../support/webhook-receiver.js";

// Runs only against PostgreSQL: PGlite serialises every session, so neither the writers nor the
// deliverers could interleave there. Several writers change a few workspaces at once while
// several deliverers (as several Lambdas would) claim and send; the receiver fails some first
// attempts so that earlier events wait through a backoff while later ones are already due.

let t: TestContext;
let deps: Deps;
let rx: Receiver;

beforeAll(async () => {
  t = await createTestContext({
    maxConnections: 12,
    env: {
      WEBHOOK_ALLOW_PRIVATE: "true",
      WEBHOOK_RETRY_FIRST_DELAY_SECONDS: "0.02",
      WEBHOOK_RETRY_MAX_DELAY_SECONDS: "0.1",
    },
  });
  deps = t.deps;
  rx = await startReceiver();
});
afterAll(async () => {
  await rx?.close();
  await t?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("webhook delivery under concurrency (PostgreSQL)", () => {
  it("acknowledges every event exactly once and in seq order per workspace", async () => {
    // Prepare: a subscriber to everything, three external workspaces online.
    const hook = await t.admin("POST", "/webhooks", { url: rx.url, events: ["*"] });
    expect(hook.status).toBe(201);
    // Fails the first attempt of about a third of the events, answers after a little while.
    rx.answer = async ({ id, attempt }) => {
      await sleep(Math.floor(Math.random() * 5));
      return attempt === 1 && Number.parseInt(id.slice(-2), 16) % 3 === 0 ? 500 : 200;
    };
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await t.admin("POST", "/workspaces", { name: `w${i}`, runtime: "external" });
      const id = ((await res.json()) as { workspace: { id: string } }).workspace.id;
      ids.push(id);
      await transition(deps.db, {
        ids: [id],
        from: ["awaiting_agent"],
        to: "online",
        reason: "up",
        actor: "agent",
      });
    }

    // Act: writers flip the workspaces online/offline concurrently while four deliverers run.
    let writing = true;
    const writers = ids.flatMap((id) =>
      Array.from({ length: 12 }, async (_, k) => {
        await sleep(k * 3);
        const down = k % 2 === 0;
        await transition(deps.db, {
          ids: [id],
          from: [down ? "online" : "offline"],
          to: down ? "offline" : "online",
          reason: `flip ${k}`,
          actor: "api",
        });
      }),
    );
    const deliverers = Array.from({ length: 4 }, async () => {
      for (;;) {
        const report = await deliverPending(deps, { deadline: deadlineIn(1_000) });
        const pending = await t.opened.db.execute(
          sql`select count(*)::int as n from webhook_deliveries where state = 'pending'`,
        );
        const left = Number((pending as unknown as { rows: { n: number }[] }).rows[0]?.n);
        if (!writing && left === 0) return;
        if (report.attempted === 0) await sleep(10);
      }
    });
    await Promise.all(writers);
    writing = false;
    await Promise.all(deliverers);

    // Assess: exactly one acknowledgement per event, and per workspace the receiver saw the
    // events (attempts included) in seq order.
    const events = (await t.opened.db.execute(
      sql`select id, workspace_id, seq from workspace_events order by seq`,
    )) as unknown as { rows: { id: string; workspace_id: string; seq: string | number }[] };
    expect(events.rows.length).toBeGreaterThan(ids.length * 3);
    const acks = new Map<string, number>();
    for (const r of rx.received) if (r.status < 300) acks.set(r.id, (acks.get(r.id) ?? 0) + 1);
    for (const e of events.rows) expect(acks.get(e.id), `event ${e.seq}`).toBe(1);
    expect(rx.received.some((r) => r.status >= 500)).toBe(true);
    const byArrival = [...rx.received].sort((a, b) => a.n - b.n);
    for (const id of ids) {
      const seqs = byArrival
        .map((r) => JSON.parse(r.body).data as { workspaceId: string; seq: number })
        .filter((d) => d.workspaceId === id)
        .map((d) => d.seq);
      expect(seqs, `workspace ${id}`).toEqual([...seqs].sort((a, b) => a - b));
    }
  });
});
