import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Db } from "../../../lib/db/client.js";
import { workspaceEvents, workspaces } from "../../../lib/db/schema.js";
import { transition } from "../../../lib/workspaces/transition.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";

// Keyset pagination must hand out every row exactly once for any page size. PostgreSQL keeps
// microseconds and PGlite milliseconds, so a cursor that is less precise than the column skips
// rows (lists) or repeats one forever (events) on one backend and passes on the other.

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

const LIMITS = [1, 2, 3, 7];

interface Walked {
  items: string[];
  pages: number;
}

/**
 * Follows `nextCursor` from the first page to the last. Stops after `maxPages` so that a cursor
 * which never advances fails the test instead of hanging it.
 */
async function walk(
  path: string,
  key: "workspaces" | "events",
  label: (item: Record<string, unknown>) => string,
  limit: number,
  maxPages: number,
): Promise<Walked> {
  const items: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const res = await t.admin(
      "GET",
      `${path}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`,
    );
    expect(res.status).toBe(200);
    const page = (await res.json()) as Record<string, unknown> & { nextCursor: string | null };
    const got = page[key] as Record<string, unknown>[];
    expect(got.length).toBeLessThanOrEqual(limit);
    items.push(...got.map(label));
    cursor = page.nextCursor;
    pages++;
  } while (cursor !== null && pages < maxPages);
  return { items, pages };
}

describe(`keyset pagination over ${dbKind()}`, () => {
  it("GET /workspaces hands out every workspace exactly once, newest first, for limits 1, 2, 3, 7", async () => {
    // Prepare: 60 created through the API in quick succession (concurrently, so several share a
    // millisecond), and 12 that share one creation time exactly (one statement, one now()).
    const created = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        t.admin("POST", "/workspaces", { name: `w${i}`, runtime: "external" }),
      ),
    );
    expect(created.map((r) => r.status)).toEqual(created.map(() => 201));
    await t.opened.db.insert(workspaces).values(
      Array.from({ length: 12 }, (_, i) => ({
        name: `tie${i}`,
        runtime: "external",
        status: "awaiting_agent" as const,
      })),
    );
    const all = await t.admin("GET", "/workspaces?limit=200");
    const reference = ((await all.json()) as { workspaces: { id: string }[] }).workspaces.map(
      (w) => w.id,
    );
    expect(reference).toHaveLength(72);
    expect(new Set(reference).size).toBe(72);

    // Act
    const walked: Record<number, string[]> = {};
    for (const limit of LIMITS) {
      walked[limit] = (
        await walk("/workspaces", "workspaces", (w) => String(w.id), limit, 72 + 2)
      ).items;
    }

    // Assess: the same ids in the same order as one big page, whatever the page size.
    for (const limit of LIMITS) expect(walked[limit], `limit=${limit}`).toEqual(reference);
  });

  it("GET /workspaces with a status filter pages within the filter", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 9; i++) {
      const res = await t.admin("POST", "/workspaces", { name: `s${i}`, runtime: "external" });
      ids.push(((await res.json()) as { workspace: { id: string } }).workspace.id);
    }
    const online = ids.filter((_, i) => i % 2 === 0);
    await transition(t.opened.db, {
      ids: online,
      from: ["awaiting_agent"],
      to: "online",
      reason: "test",
      actor: "agent",
    });
    const walked = await walk(
      "/workspaces?status=online",
      "workspaces",
      (w) => String(w.id),
      2,
      10,
    );
    expect(walked.items).toEqual([...online].reverse());
  });

  it("GET /workspaces/:id/events hands out every event exactly once, in order, for limits 1, 2, 3, 7", async () => {
    // Prepare: one workspace whose log holds 53 events written in quick succession.
    const res = await t.admin("POST", "/workspaces", { name: "busy", runtime: "external" });
    const { id } = ((await res.json()) as { workspace: { id: string } }).workspace;
    const written = ["created"];
    for (let i = 0; i < 52; i++) {
      const [from, to] = i % 2 === 0 ? ["awaiting_agent", "online"] : ["online", "awaiting_agent"];
      const reason = `step ${i}`;
      const changed = await transition(t.opened.db, {
        ids: [id],
        from: [from as "online" | "awaiting_agent"],
        to: to as "online" | "awaiting_agent",
        reason,
        actor: "api",
      });
      expect(changed).toHaveLength(1);
      written.push(reason);
    }
    const all = await t.admin("GET", `/workspaces/${id}/events?limit=200`);
    const reference = ((await all.json()) as { events: { reason: string }[] }).events.map(
      (e) => e.reason,
    );
    expect(reference).toEqual(written);

    // Act
    const walked: Record<number, string[]> = {};
    for (const limit of LIMITS) {
      walked[limit] = (
        await walk(`/workspaces/${id}/events`, "events", (e) => String(e.reason), limit, 53 + 2)
      ).items;
    }

    // Assess
    for (const limit of LIMITS) expect(walked[limit], `limit=${limit}`).toEqual(reference);
  });

  it("events written within one transaction (one now(), often one millisecond) keep their order", async () => {
    // Prepare
    const res = await t.admin("POST", "/workspaces", { name: "burst", runtime: "external" });
    const { id } = ((await res.json()) as { workspace: { id: string } }).workspace;
    const written = ["created"];

    // Act: 20 changes in one transaction, as fast as the database takes them.
    await t.opened.db.transaction(async (tx) => {
      for (let i = 0; i < 20; i++) {
        const to = i % 2 === 0 ? "online" : "offline";
        await transition(tx as unknown as Db, {
          ids: [id],
          from: [i === 0 ? "awaiting_agent" : i % 2 === 0 ? "offline" : "online"],
          to,
          reason: `burst ${i}`,
          actor: "api",
        });
        written.push(`burst ${i}`);
      }
    });

    // Assess
    const walked = await walk(`/workspaces/${id}/events`, "events", (e) => String(e.reason), 3, 10);
    expect(walked.items).toEqual(written);
  });

  it("the log reads in commit order even when the clock steps back between two events", async () => {
    // Prepare: the second change is stamped an hour before the first, as after an NTP step.
    const res = await t.admin("POST", "/workspaces", { name: "clock", runtime: "external" });
    const { id } = ((await res.json()) as { workspace: { id: string } }).workspace;
    await transition(t.opened.db, {
      ids: [id],
      from: ["awaiting_agent"],
      to: "online",
      reason: "registered",
      actor: "agent",
    });
    await t.opened.db.insert(workspaceEvents).values({
      workspaceId: id,
      from: "online",
      to: "offline",
      reason: "stale",
      actor: "sweep:external",
      at: new Date(Date.now() - 3_600_000),
    });

    // Act
    const walked = await walk(`/workspaces/${id}/events`, "events", (e) => String(e.reason), 1, 10);

    // Assess
    expect(walked.items).toEqual(["created", "registered", "stale"]);
  });
});
