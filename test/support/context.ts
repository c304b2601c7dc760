import { sql } from "drizzle-orm";
import { inject } from "vitest";
import { type AwsClients, createAwsClients } from "../../lib/compute/clients.js";
import { type Config, loadConfig } from "../../lib/config.js";
import { type OpenedDb, openDb } from "../../lib/db/client.js";
import { type Deps, silentLog, systemClock } from "../../lib/deps.js";
import { createApp } from "../../lib/http/app.js";
import { useNeonRelay } from "./neon-local.js";
import { createTestDatabase } from "./pg-database.js";

export const ADMIN_TOKEN = "test-admin-token-0123456789abcdef";

/**
 * Which database this run of a db suite uses (the vitest project sets TEST_DB): PGlite, real
 * PostgreSQL through node-postgres, or the same server through the Neon driver and the relay.
 */
export type TestDbKind = "pglite" | "postgres" | "neon";

export const dbKind = (): TestDbKind =>
  process.env.TEST_DB === "postgres" || process.env.TEST_DB === "neon"
    ? process.env.TEST_DB
    : "pglite";

/**
 * Opens this file's database: PGlite in memory, or a fresh database on the real PostgreSQL
 * server of the `db:postgres`/`db:neon` project (postgres-global.ts). Empty, not migrated.
 */
export async function openBlankTestDb(
  opts: { maxConnections?: number } = {},
): Promise<OpenedDb & { url: string }> {
  const kind = dbKind();
  let url = "memory://";
  if (kind !== "pglite") url = await createTestDatabase(inject("pgUrl"));
  if (kind === "neon") useNeonRelay(inject("pgRelayPort"));
  const opened = await openDb(url, {
    // A plain loopback URL picks node-postgres by itself; the neon project names its driver.
    ...(kind === "neon" && { driver: "neon" as const }),
    onPoolError: () => {},
    ...opts,
  });
  return { ...opened, url };
}

/** {@link openBlankTestDb}, migrated. */
export async function openTestDb(
  opts: { maxConnections?: number } = {},
): Promise<OpenedDb & { url: string }> {
  const opened = await openBlankTestDb(opts);
  await opened.migrate();
  return opened;
}

/** Empties every table (≈ 4 ms), cheaper than a new PGlite per test. */
export async function truncateAll(opened: OpenedDb): Promise<void> {
  await opened.db.execute(
    sql`truncate workspaces, workspace_tokens, workspace_plugins, workspace_events, plugin_allowlist, sweep_leases, webhooks cascade`,
  );
}

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ ADMIN_TOKEN, LOG_LEVEL: "SILENT", ...env }, "local");
}

export interface TestContext {
  opened: OpenedDb;
  url: string;
  deps: Deps;
  app: ReturnType<typeof createApp>;
  /** `app.request` with the admin token and JSON encoding. */
  admin(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<Response>;
  /** `app.request` with the given bearer token. */
  as(token: string | null, method: string, path: string, body?: unknown): Promise<Response>;
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** One database per test file; `reset()` between tests. */
export async function createTestContext(
  opts: { env?: Record<string, string>; aws?: AwsClients; maxConnections?: number } = {},
): Promise<TestContext> {
  const opened = await openTestDb(
    opts.maxConnections === undefined ? {} : { maxConnections: opts.maxConnections },
  );
  const config = testConfig(opts.env);
  const aws =
    opts.aws ??
    createAwsClients({
      region: "us-east-1",
      // Nothing listens here: a test that reaches AWS without a local cloud fails loudly.
      endpoint: "http://127.0.0.1:9",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
      maxAttempts: 1,
    });
  const deps: Deps = { db: opened.db, aws, clock: systemClock, log: silentLog, config };
  const app = createApp(deps);
  const as = async (token: string | null, method: string, path: string, body?: unknown) =>
    app.request(path, {
      method,
      headers: {
        ...(token !== null && { authorization: `Bearer ${token}` }),
        ...(body !== undefined && { "content-type": "application/json" }),
      },
      ...(body !== undefined && { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
  return {
    opened,
    url: opened.url,
    deps,
    app,
    as,
    admin: async (method, path, body, headers = {}) =>
      app.request(path, {
        method,
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          ...(body !== undefined && { "content-type": "application/json" }),
          ...headers,
        },
        ...(body !== undefined && { body: typeof body === "string" ? body : JSON.stringify(body) }),
      }),
    reset: () => truncateAll(opened),
    close: () => opened.close(),
  };
}
