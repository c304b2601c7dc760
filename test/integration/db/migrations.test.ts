import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OpenedDb } from "../../../lib/db/client.js";
import { workspaceEvents } from "../../../lib/db/schema.js";
import { listEvents } from "../../../lib/workspaces/queries.js";
import { rowsOf, transition } from "../../../lib/workspaces/transition.js";
import { dbKind, openBlankTestDb } from "../../support/context.js";

// A deployment upgrades a database that already holds data: the committed migrations must apply
// on top of the previous ones and keep what is there meaningful, on PGlite and PostgreSQL 15.

const committed = fileURLToPath(new URL("../../../lib/db/migrations", import.meta.url));
let opened: OpenedDb;
let dir: string;

/** A copy of the migrations folder as it was after its first `count` migrations. */
function migrationsUpTo(count: number): string {
  const folder = join(dir, `upto-${count}`);
  cpSync(committed, folder, { recursive: true });
  const journalFile = join(folder, "meta", "_journal.json");
  const journal = JSON.parse(readFileSync(journalFile, "utf8")) as { entries: unknown[] };
  journal.entries = journal.entries.slice(0, count);
  writeFileSync(journalFile, JSON.stringify(journal));
  return folder;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "wcp-migrations-"));
  opened = await openBlankTestDb();
});
afterAll(async () => {
  await opened?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe(`migrations over ${dbKind()}`, () => {
  it("0001 numbers existing events by (at, id) and new events after them", async () => {
    // Prepare: the schema as of 0000, with two workspaces' logs written out of order, two
    // events sharing one time (the id breaks the tie, as the old reads did).
    await opened.migrate(migrationsUpTo(1));
    const db = opened.db;
    const [a, b] = ["aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"];
    await db.execute(sql`
      insert into workspaces (id, name, runtime, status) values
        (${a}, 'a', 'external', 'online'), (${b}, 'b', 'external', 'offline')`);
    const t0 = "2026-01-01T00:00:00.000001Z";
    const old: [string, string, string | null, string, string][] = [
      // id, workspace, from, to, at
      ["00000000-0000-4000-8000-00000000000c", b, "online", "offline", "2026-01-01T00:00:03Z"],
      ["00000000-0000-4000-8000-00000000000b", a, null, "awaiting_agent", t0],
      ["00000000-0000-4000-8000-00000000000a", b, null, "awaiting_agent", t0],
      [
        "00000000-0000-4000-8000-00000000000d",
        a,
        "awaiting_agent",
        "online",
        "2026-01-01T00:00:02Z",
      ],
      [
        "00000000-0000-4000-8000-00000000000e",
        b,
        "awaiting_agent",
        "online",
        "2026-01-01T00:00:01Z",
      ],
    ];
    for (const [id, ws, from, to, at] of old) {
      await db.execute(sql`
        insert into workspace_events (id, workspace_id, "from", "to", reason, actor, at)
        values (${id}, ${ws}, ${from}, ${to}, 'old', 'api', ${at}::timestamptz)`);
    }

    // Act
    await opened.migrate();
    await opened.migrate(); // idempotent
    const [next] = await transition(db, {
      ids: [a],
      from: ["online"],
      to: "offline",
      reason: "new",
      actor: "sweep:liveness",
    });

    // Assess: old events numbered 1..5 in (at, id) order; the new one is 6.
    const numbered = rowsOf(
      await db.execute(sql`select id, seq::text as seq from workspace_events order by seq`),
    ).map((r) => [String(r.id).slice(-1), String(r.seq)]);
    expect(numbered).toEqual([
      ["a", "1"],
      ["b", "2"],
      ["e", "3"],
      ["d", "4"],
      ["c", "5"],
      [expect.any(String), "6"],
    ]);
    expect(next?.from).toBe("online");
    const page = await listEvents(db, a, { limit: 10 });
    expect(page.items.map((e) => [e.from, e.to, e.reason])).toEqual([
      [null, "awaiting_agent", "old"],
      ["awaiting_agent", "online", "old"],
      ["online", "offline", "new"],
    ]);
    // seq is the database's to assign: a client cannot write one.
    await expect(
      db.execute(sql`insert into workspace_events (workspace_id, "to", reason, actor, seq)
                     values (${a}, 'online', 'forged', 'api', 1)`),
    ).rejects.toThrow();
    expect(await db.$count(workspaceEvents)).toBe(6);
  });
});
