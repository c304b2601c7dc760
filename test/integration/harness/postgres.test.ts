import { Pool } from "@neondatabase/serverless";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { useNeonRelay } from "../../support/neon-local.js";
import { createTestDatabase } from "../../support/pg-database.js";
import { type PostgresServer, startPostgres } from "../../support/postgres.js";
import { parseLoopbackAddress, startWsRelay, type WsRelay } from "../../support/ws-relay.js";

// This file runs in the `integration` project, which has no globalSetup, so it starts its own
// server and relay.
let server: PostgresServer;
let relay: WsRelay;
const dials: string[] = [];

beforeAll(async () => {
  server = await startPostgres();
  relay = await startWsRelay({ onDial: (host, port) => dials.push(`${host}:${port}`) });
  useNeonRelay(relay.port);
});

afterAll(async () => {
  await relay?.close();
  await server?.stop();
});

/** A Pool as the app would hold one: with an error listener, collecting what it reports. */
function pool(url: string, max = 10): { pool: Pool; errors: Error[] } {
  const errors: Error[] = [];
  const p = new Pool({ connectionString: url, max });
  p.on("error", (error: Error) => errors.push(error));
  return { pool: p, errors };
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Opens a raw WebSocket to the relay and resolves with how it was closed. */
function closeOf(query: string): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${relay.port}/v1${query}`);
    socket.on("close", (code, reason) => resolve({ code, reason: reason.toString() }));
    socket.on("error", reject);
  });
}

describe("startPostgres", () => {
  it("serves PostgreSQL 15 on loopback with a password-protected role", () => {
    const url = new URL(server.url);
    expect(url.protocol).toBe("postgres:");
    expect(url.hostname).toBe("127.0.0.1");
    expect(Number(url.port)).toBe(server.port);
    expect(url.username).toBe("wcp");
    expect(url.password).toMatch(/^[0-9a-f]{36}$/);
    expect(url.pathname).toBe("/wcp");
  });

  it("rejects a wrong password (SCRAM over TCP, no trust)", async () => {
    const url = new URL(server.url);
    url.password = "wrong";
    const { pool: p } = pool(url.toString());
    try {
      await expect(p.query("select 1")).rejects.toMatchObject({ code: "28P01" });
    } finally {
      await p.end();
    }
  });
});

describe("the Neon Pool through the relay", () => {
  it("runs queries in a database of its own", async () => {
    const url = await createTestDatabase(server.url);
    const name = new URL(url).pathname.slice(1);
    expect(name).toMatch(/^t_[0-9a-f]{16}$/);
    const { pool: p, errors } = pool(url);
    try {
      const version = await p.query<{ server_version: string }>("show server_version");
      expect(version.rows[0]?.server_version).toMatch(/^15\./);
      const who = await p.query<{ db: string; owner: string; me: string }>(
        `select current_database() as db, current_user as me,
                pg_get_userbyid(datdba) as owner
           from pg_database where datname = current_database()`,
      );
      expect(who.rows[0]).toEqual({ db: name, me: "wcp", owner: "wcp" });

      await p.query("create table item (id int primary key, label text not null)");
      await p.query("insert into item values ($1, $2), ($3, $4)", [1, "one", 2, "two"]);
      const rows = await p.query<{ id: number; label: string }>("select * from item order by id");
      expect(rows.rows).toEqual([
        { id: 1, label: "one" },
        { id: 2, label: "two" },
      ]);
      await expect(p.query("insert into item values (1, 'dup')")).rejects.toMatchObject({
        code: "23505",
      });
      expect(errors).toEqual([]);
    } finally {
      await p.end();
    }
    expect(dials.at(-1)).toBe(`127.0.0.1:${server.port}`);
  });

  it("keeps databases from createTestDatabase apart", async () => {
    const [a, b] = await Promise.all([
      createTestDatabase(server.url),
      createTestDatabase(server.url),
    ]);
    expect(a).not.toBe(b);
    const { pool: pa } = pool(a as string);
    const { pool: pb } = pool(b as string);
    try {
      await pa.query("create table only_in_a (x int)");
      const seen = await pb.query("select to_regclass('only_in_a') as t");
      expect(seen.rows[0]).toEqual({ t: null });
    } finally {
      await Promise.all([pa.end(), pb.end()]);
    }
  });

  it("commits and rolls back transactions", async () => {
    const url = await createTestDatabase(server.url);
    const { pool: p } = pool(url);
    try {
      await p.query("create table account (id int primary key, balance int not null)");
      await p.query("insert into account values (1, 100), (2, 0)");

      const client = await p.connect();
      try {
        await client.query("begin");
        await client.query("update account set balance = balance - 30 where id = 1");
        await client.query("update account set balance = balance + 30 where id = 2");
        // Not visible to other sessions until commit.
        const outside = await p.query("select balance from account where id = 2");
        expect(outside.rows[0]).toEqual({ balance: 0 });
        await client.query("commit");

        await client.query("begin");
        await client.query("update account set balance = 0 where id = 1");
        await client.query("rollback");

        // A failed statement aborts the whole transaction.
        await client.query("begin");
        await client.query("update account set balance = 999 where id = 2");
        await expect(client.query("insert into account values (1, 1)")).rejects.toMatchObject({
          code: "23505",
        });
        await expect(client.query("select 1")).rejects.toMatchObject({ code: "25P02" });
        await client.query("rollback");
      } finally {
        client.release();
      }

      const after = await p.query("select id, balance from account order by id");
      expect(after.rows).toEqual([
        { id: 1, balance: 70 },
        { id: 2, balance: 30 },
      ]);
    } finally {
      await p.end();
    }
  });

  it("survives pg_terminate_backend of an idle connection when it has an error listener", async () => {
    const url = await createTestDatabase(server.url);
    const { pool: p, errors } = pool(url, 1);
    const { pool: admin } = pool(server.url, 1);
    try {
      const first = await p.query<{ pid: number }>("select pg_backend_pid() as pid");
      const pid = first.rows[0]?.pid;
      expect(pid).toBeTypeOf("number");

      const killed = await admin.query("select pg_terminate_backend($1) as ok", [pid]);
      expect(killed.rows[0]).toEqual({ ok: true });
      // The idle client learns of it asynchronously; the listener keeps the process alive.
      await until(() => errors.length > 0);
      expect(errors[0]).toMatchObject({ code: "57P01" });

      const next = await p.query<{ pid: number }>("select pg_backend_pid() as pid");
      expect(next.rows[0]?.pid).toBeTypeOf("number");
      expect(next.rows[0]?.pid).not.toBe(pid);
    } finally {
      await Promise.all([p.end(), admin.end()]);
    }
  });
});

describe("the relay", () => {
  it.each([
    ["a private address", "?address=10.0.0.1:5432"],
    ["a public name", "?address=example.com:5432"],
    ["a name that merely starts like loopback", "?address=127.0.0.1.nip.io:5432"],
    ["another loopback-looking literal", "?address=127.0.0.2:5432"],
    ["no address", ""],
    ["two addresses", "?address=127.0.0.1:1&address=10.0.0.1:5432"],
    ["a bad port", "?address=127.0.0.1:99999"],
  ])("refuses %s without dialing anything", async (_what, query) => {
    const before = dials.length;
    const closed = await closeOf(query);
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/loopback/);
    expect(dials.length).toBe(before);
  });

  it("accepts only loopback addresses", () => {
    expect(parseLoopbackAddress("127.0.0.1:5432")).toEqual({ host: "127.0.0.1", port: 5432 });
    expect(parseLoopbackAddress("localhost:5432")).toEqual({ host: "127.0.0.1", port: 5432 });
    expect(parseLoopbackAddress("LOCALHOST:1")).toEqual({ host: "127.0.0.1", port: 1 });
    expect(parseLoopbackAddress("::1:5432")).toEqual({ host: "::1", port: 5432 });
    expect(parseLoopbackAddress("[::1]:5432")).toEqual({ host: "::1", port: 5432 });
    for (const bad of [
      null,
      "",
      "127.0.0.1",
      ":5432",
      "127.0.0.1:",
      "127.0.0.1:0",
      "127.0.0.1:65536",
      "127.0.0.1:54x",
      "10.0.0.1:5432",
      "0.0.0.0:5432",
      "::ffff:10.0.0.1:5432",
      "[::]:5432",
      "localhost.example.com:5432",
    ]) {
      expect(parseLoopbackAddress(bad), String(bad)).toBeUndefined();
    }
  });

  it("closes the WebSocket when the upstream port has nothing listening", async () => {
    // A loopback port that was just free: the dial fails fast and the client hears about it.
    const { port } = await startWsRelay().then(async (r) => {
      await r.close();
      return r;
    });
    const closed = await closeOf(`?address=127.0.0.1:${port}`);
    expect(closed.code).toBe(1011);
    expect(dials).toContain(`127.0.0.1:${port}`);
  });
});
