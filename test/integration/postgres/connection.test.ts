import { sql } from "drizzle-orm";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDb } from "../../../lib/db/client.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";

// Runs only in the db:postgres and db:neon projects: PGlite has no connections to kill.
let t: TestContext;

beforeAll(async () => {
  t = await createTestContext();
});
afterAll(async () => {
  await t?.close();
});

describe(`the ${dbKind() === "neon" ? "Neon" : "node-postgres"} Pool over real PostgreSQL`, () => {
  it("goes through the driver the project names (a plain URL picks node-postgres)", () => {
    expect(t.opened.kind).toBe(dbKind() === "neon" ? "neon" : "pg");
  });

  it("a killed database connection between two requests does not fail the second", async () => {
    expect((await t.admin("GET", "/workspaces")).status).toBe(200);
    // From a separate connection, kill every backend the app's pool holds.
    const killer = new pg.Client({ connectionString: t.url });
    killer.on("error", () => {});
    await killer.connect();
    const killed = await killer.query(
      "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
    );
    await killer.end();
    expect(killed.rowCount).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 50));
    expect((await t.admin("GET", "/workspaces")).status).toBe(200);
    expect(
      (await t.admin("POST", "/workspaces", { name: "after", runtime: "external" })).status,
    ).toBe(201);
  });

  it("a statement past the pool's statement timeout is cancelled by the server", async () => {
    // Prepare
    const opened = await openDb(t.url, {
      driver: dbKind() === "neon" ? "neon" : "pg",
      statementTimeoutMs: 300,
      onPoolError: () => {},
    });
    try {
      // Act + Assess: 57014 query_canceled, "canceling statement due to statement timeout".
      await expect(opened.db.execute(sql`select pg_sleep(5)`)).rejects.toMatchObject({
        cause: { code: "57014" },
      });
      expect(rowsCount(await opened.db.execute(sql`select 1 as one`))).toBe(1);
    } finally {
      await opened.close();
    }
  });
});

const rowsCount = (result: unknown) => (result as { rows: unknown[] }).rows.length;
