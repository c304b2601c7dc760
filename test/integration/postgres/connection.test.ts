import { Client } from "@neondatabase/serverless";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestContext, type TestContext } from "../../support/context.js";

// Runs only in the db:postgres project: PGlite has no connections to kill.
let t: TestContext;

beforeAll(async () => {
  t = await createTestContext();
});
afterAll(async () => {
  await t?.close();
});

describe("the Neon Pool over real PostgreSQL", () => {
  it("a killed database connection between two requests does not fail the second", async () => {
    expect((await t.admin("GET", "/workspaces")).status).toBe(200);
    // From a separate connection, kill every backend the app's pool holds.
    const killer = new Client(t.url);
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
});
