import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDb, type PostgresDriver } from "../../../lib/db/client.js";
import { createApp } from "../../../lib/http/app.js";
import { ADMIN_TOKEN, createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { waitFor } from "../../support/wait.js";

// A database that cannot serve a request is an outage the client may wait out: 503
// DATABASE_UNAVAILABLE with Retry-After, never 500. Driven through the real drivers against the
// real server: a connection terminated mid-query (57P01), a database out of connection slots (53300),
// a server that is not there. A statement the server refuses on its merits stays 500 INTERNAL.
// Runs in db:postgres (node-postgres) and db:neon (the Neon driver through the relay).

let t: TestContext;

beforeAll(async () => {
  t = await createTestContext();
});
afterAll(async () => {
  await t?.close();
});

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** A client on the server as the test's own (owner) role, outside the app's pool. */
async function sideConnection(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: t.url });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** The app over another URL, with the same settings and the driver this project uses. */
async function appAt(url: string, driver: PostgresDriver = dbKind() === "neon" ? "neon" : "pg") {
  const opened = await openDb(url, { driver, onPoolError: () => {} });
  return { app: createApp({ ...t.deps, db: opened.db }), close: () => opened.close() };
}

async function expectUnavailable(res: Response) {
  expect(res.status).toBe(503);
  expect(res.headers.get("retry-after")).toBe("5");
  const body = (await res.json()) as { error: { code: string } };
  expect(body.error.code).toBe("DATABASE_UNAVAILABLE");
}

describe(`database unavailable over ${dbKind()}`, () => {
  it("a connection terminated mid-query (57P01) answers 503 with Retry-After; the next request is served", async () => {
    // Prepare: hold a lock the request's query waits for.
    const locker = await sideConnection();
    await locker.query("begin");
    await locker.query("lock table workspaces in access exclusive mode");

    // Act: terminate the app's backend while it waits.
    const pending = t.app.request("/workspaces", { headers: admin });
    const waiting = await waitFor(async () => {
      const r = await locker.query<{ pid: number }>(
        "select pid from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()",
      );
      return r.rows[0]?.pid;
    });
    await locker.query("select pg_terminate_backend($1)", [waiting]);
    const res = await pending;
    await locker.query("rollback");
    await locker.end();

    // Assess
    await expectUnavailable(res);
    expect((await t.app.request("/workspaces", { headers: admin })).status).toBe(200);
  });

  it("a database out of connection slots (53300) answers 503", async () => {
    // Prepare: the database (its owner may) takes no new connection; a fresh pool needs one.
    const side = await sideConnection();
    const name = new URL(t.url).pathname.slice(1);
    await side.query(`alter database ${name} connection limit 0`);
    const limited = await appAt(t.url);

    // Act
    let res: Response;
    try {
      res = await limited.app.request("/workspaces", { headers: admin });
    } finally {
      await side.query(`alter database ${name} connection limit -1`);
      await side.end();
      await limited.close();
    }

    // Assess
    await expectUnavailable(res);
  });

  it("a server that is not there (connection refused) answers 503 on every route that needs it", async () => {
    // Prepare: nothing listens on port 1. Through node-postgres in both projects: through the
    // Neon driver and the test's relay, a refused connection after the first one can surface only
    // after pg-pool's connect timeout and the WebSocket's close timeout (30 s) — a deadline
    // matter, noted for the request deadlines.
    const url = new URL(t.url);
    url.port = "1";
    const requests: [string, RequestInit][] = [
      ["/workspaces", { headers: admin }],
      [
        "/workspaces",
        {
          method: "POST",
          headers: { ...admin, "content-type": "application/json" },
          body: JSON.stringify({ name: "x", runtime: "external" }),
        },
      ],
      // A workspace token is looked up in the database before anything else.
      [
        "/registry/heartbeat",
        { method: "POST", headers: { authorization: `Bearer ${"a".repeat(43)}` } },
      ],
    ];
    const gone = await appAt(url.toString(), "pg");

    try {
      for (const [path, init] of requests) {
        // Act
        const res = await gone.app.request(path, init);

        // Assess
        await expectUnavailable(res);
      }
    } finally {
      await gone.close();
    }
  });

  it("a statement the server refuses (a missing table) stays 500 INTERNAL", async () => {
    const side = await sideConnection();
    await side.query("alter table workspace_events rename to workspace_events_away");
    try {
      const res = await t.app.request("/workspaces", {
        method: "POST",
        headers: { ...admin, "content-type": "application/json" },
        body: JSON.stringify({ name: "x", runtime: "external" }),
      });
      expect(res.status).toBe(500);
      expect(res.headers.get("retry-after")).toBeNull();
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("INTERNAL");
    } finally {
      await side.query("alter table workspace_events_away rename to workspace_events");
      await side.end();
    }
  });
});
