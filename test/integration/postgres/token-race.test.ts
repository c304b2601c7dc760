import { sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { workspaces } from "../../../lib/db/schema.js";
import { mintToken, replaceTokens } from "../../../lib/workspaces/tokens.js";
import { rowsOf } from "../../../lib/workspaces/transition.js";
import { createTestContext, type TestContext } from "../../support/context.js";

// Runs only on PostgreSQL, where a token write and a DELETE's move to `removing` really overlap:
// the token write must wait for the removal's row lock and then refuse, never slip a live token
// in after the removal's revocation has run.

let t: TestContext;

beforeAll(async () => {
  t = await createTestContext({ maxConnections: 4 });
});
afterAll(async () => {
  await t?.close();
});
beforeEach(async () => {
  await t.reset();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("token writes against a racing removal (PostgreSQL)", () => {
  it("a token write that starts while the removal holds the row waits, then refuses", async () => {
    // Prepare
    const [row] = await t.opened.db
      .insert(workspaces)
      .values({ name: "racing", runtime: "external", status: "online" })
      .returning();
    const id = row?.id ?? "";

    // Act: the removal's transaction moves the row to removing and holds its lock a moment; the
    // token write begins meanwhile.
    let written: Promise<boolean> | undefined;
    await t.opened.db.transaction(async (tx) => {
      await tx.execute(sql`update workspaces set status = 'removing' where id = ${id}`);
      written = replaceTokens(t.opened.db, id, mintToken());
      await sleep(200);
    });
    const stored = await written;

    // Assess
    expect(stored).toBe(false);
    const live = await t.opened.db.execute(
      sql`select count(*)::int as n from workspace_tokens where workspace_id = ${id} and revoked_at is null`,
    );
    expect(Number(rowsOf(live)[0]?.n)).toBe(0);
  });

  it("a token row left live on a removed workspace still does not authenticate", async () => {
    // Prepare: a writer that forgot the rule (the authentication check is the last line).
    const [row] = await t.opened.db
      .insert(workspaces)
      .values({ name: "gone", runtime: "external", status: "removed" })
      .returning();
    const token = mintToken();
    await t.opened.db.execute(sql`
      insert into workspace_tokens (workspace_id, token_hash, prefix)
      values (${row?.id ?? ""}, ${token.hash}, ${token.prefix})`);

    // Act
    const res = await t.as(token.token, "POST", "/registry/heartbeat");

    // Assess
    expect(res.status).toBe(401);
  });
});
