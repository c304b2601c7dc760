import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Db } from "../../../lib/db/client.js";
import { WORKSPACE_STATUSES, type WorkspaceStatus, workspaces } from "../../../lib/db/schema.js";
import { transition } from "../../../lib/workspaces/transition.js";
import { createTestContext, type TestContext } from "../../support/context.js";

// Runs only in the db:postgres project: PGlite serialises every session, so writers never
// interleave there. On PostgreSQL a transaction's now() is the time it began, not the time it
// committed; a log ordered by that time puts a later change before the one it followed.

let t: TestContext;

beforeAll(async () => {
  // Enough connections for the writers to really run side by side.
  t = await createTestContext({ maxConnections: 10 });
});
afterAll(async () => {
  await t?.close();
});
beforeEach(async () => {
  await t.reset();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface ApiEvent {
  from: WorkspaceStatus | null;
  to: WorkspaceStatus;
  reason: string;
  at: string;
}

async function eventsOf(id: string): Promise<ApiEvent[]> {
  const res = await t.admin("GET", `/workspaces/${id}/events?limit=200`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { events: ApiEvent[] }).events;
}

/** Where the log's chain breaks: each event must start where the one before it ended. */
function chainBreaks(events: ApiEvent[], status: WorkspaceStatus): string[] {
  const breaks: string[] = [];
  if (events[0]?.from !== null) breaks.push(`first event starts at ${events[0]?.from}`);
  for (let i = 1; i < events.length; i++) {
    const [prev, cur] = [events[i - 1], events[i]];
    if (cur?.from !== prev?.to) breaks.push(`#${i} ${cur?.from}→${cur?.to} after →${prev?.to}`);
  }
  if (events.at(-1)?.to !== status)
    breaks.push(`log ends at ${events.at(-1)?.to}, row is ${status}`);
  return breaks;
}

async function createExternal(name: string): Promise<string> {
  const res = await t.admin("POST", "/workspaces", { name, runtime: "external" });
  expect(res.status).toBe(201);
  return ((await res.json()) as { workspace: { id: string } }).workspace.id;
}

async function statusOf(id: string): Promise<WorkspaceStatus> {
  const res = await t.admin("GET", `/workspaces/${id}`);
  return ((await res.json()) as { workspace: { status: WorkspaceStatus } }).workspace.status;
}

describe("the event log over PostgreSQL with concurrent writers", () => {
  it("a writer whose transaction began first but committed second is logged second", async () => {
    // Prepare
    const id = await createExternal("raced");
    await transition(t.opened.db, {
      ids: [id],
      from: ["awaiting_agent"],
      to: "online",
      reason: "registered",
      actor: "agent",
    });

    // Act: the early transaction reads first (its now() is fixed there) and holds on; another
    // connection moves the row on and commits; only then does the early one write, after it.
    let begun!: () => void;
    const hasBegun = new Promise<void>((resolve) => {
      begun = resolve;
    });
    let lateDone!: () => void;
    const lateHasCommitted = new Promise<void>((resolve) => {
      lateDone = resolve;
    });
    const early = t.opened.db.transaction(async (tx) => {
      await tx.execute(sql`select 1`);
      begun();
      await lateHasCommitted;
      return transition(tx as unknown as Db, {
        ids: [id],
        from: ["online", "provisioning"],
        to: "removing",
        reason: "removed",
        actor: "api",
      });
    });
    await hasBegun;
    // A moment on the clock between the two, so their start times differ on any clock.
    await sleep(5);
    const late = await transition(t.opened.db, {
      ids: [id],
      from: ["online"],
      to: "provisioning",
      reason: "restarted",
      actor: "api",
    });
    lateDone();
    const [removed] = await early;

    // Assess: both happened, in that order, and the log says so.
    expect(late.map((c) => c.from)).toEqual(["online"]);
    expect(removed?.from).toBe("provisioning");
    const events = await eventsOf(id);
    expect(events.map((e) => e.reason)).toEqual(["created", "registered", "restarted", "removed"]);
    expect(chainBreaks(events, "removing")).toEqual([]);
    // And the times read in the log's order: each is when its change was written.
    const times = events.map((e) => Date.parse(e.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it("keeps every workspace's chain under a storm of concurrent transitions", async () => {
    // Prepare: 8 workspaces; 12 writers each, every one a transaction that reads, waits a
    // random moment and then moves the row to a random status (as a verb would).
    const ids = await Promise.all(Array.from({ length: 8 }, (_, i) => createExternal(`s${i}`)));
    const targets = WORKSPACE_STATUSES.filter((s) => s !== "removed");
    let applied = 0;

    // Act
    await Promise.all(
      ids.flatMap((id) =>
        Array.from({ length: 12 }, (_, k) =>
          t.opened.db.transaction(async (tx) => {
            await tx.execute(sql`select 1`);
            await sleep(Math.floor(Math.random() * 20));
            const to = targets[Math.floor(Math.random() * targets.length)] as WorkspaceStatus;
            const changed = await transition(tx as unknown as Db, {
              ids: [id],
              from: targets.filter((s) => s !== to),
              to,
              reason: `writer ${k}`,
              actor: "api",
            });
            applied += changed.length;
          }),
        ),
      ),
    );

    // Assess
    expect(applied).toBeGreaterThan(8 * 6);
    const rows = await t.opened.db.select({ id: workspaces.id }).from(workspaces);
    expect(rows).toHaveLength(8);
    const broken: string[] = [];
    for (const id of ids) {
      for (const b of chainBreaks(await eventsOf(id), await statusOf(id)))
        broken.push(`${id}: ${b}`);
    }
    expect(broken).toEqual([]);
  });
});
