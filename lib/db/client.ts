import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import * as schema from "./schema.js";

/** The one database handle every verb receives, whichever driver is behind it. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

/** A PostgreSQL driver a `postgres://` URL can go through (`DATABASE_DRIVER`). */
export type PostgresDriver = "neon" | "pg";

/** What actually serves a database URL. */
export type DbKind = "pglite" | PostgresDriver;

export interface OpenedDb {
  db: Db;
  kind: DbKind;
  /**
   * Applies the committed migrations (idempotent): those not yet recorded in
   * `drizzle.__drizzle_migrations`. Tests pass an older copy of the folder to upgrade from.
   */
  migrate(migrationsFolder?: string): Promise<void>;
  close(): Promise<void>;
}

export interface OpenDbOptions {
  /** The driver for a `postgres://` URL; unset picks by host (see {@link dbKindFor}). */
  driver?: PostgresDriver | undefined;
  /** Called when an idle pooled connection fails; the pool replaces it on the next query. */
  onPoolError?: (err: Error) => void;
  /** Pool size for the PostgreSQL drivers (default {@link POOL_MAX}). */
  maxConnections?: number;
  /** Sees every statement sent (one round trip each): benchmarks count them. */
  onQuery?: (query: string) => void;
  /**
   * The server cancels any statement running longer (`statement_timeout`), so no query can hold
   * a request or a sweep run past its deadline. Unset (migrations): no limit.
   */
  statementTimeoutMs?: number;
}

/** What the API and the sweep give every statement: a third of a request's deadline. */
export const STATEMENT_TIMEOUT_MS = 10_000;

/**
 * Pool settings for a Lambda container, which serves one request at a time
 * (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html: one execution
 * environment per concurrent request). The most any one invocation runs at once is the sweep's
 * four parallel workers (`forEachBounded(…, 4, …)`), so four connections are enough, and a fleet
 * of containers stays far below a server's `max_connections`.
 */
export const POOL_MAX = 4;
/**
 * Idle connections close after 5 s: a frozen container's connection is often dead when it thaws
 * (the server or a NAT dropped it), and a short idle life keeps a warm burst on one connection
 * without holding server slots between bursts.
 */
export const POOL_IDLE_TIMEOUT_MS = 5_000;
/**
 * Giving up on a connection after 5 s leaves a request time to answer inside API Gateway's 30 s
 * integration timeout (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html);
 * without it an unreachable host waits for the operating system's TCP timeout (minutes).
 */
export const POOL_CONNECT_TIMEOUT_MS = 5_000;

const committedMigrations = fileURLToPath(new URL("./migrations", import.meta.url));

/**
 * Which driver serves `url`: `file://DIR` and `memory://` → embedded PGlite; a `postgres://` URL
 * → the driver named by `driver`, else the Neon serverless driver for a host under `neon.tech`
 * (its WebSocket pooling suits Lambda) and node-postgres for anything else (RDS, Aurora, a
 * self-hosted or local server).
 * @throws Error for any other scheme (the config schema refuses those first).
 */
export function dbKindFor(url: string, driver?: PostgresDriver): DbKind {
  if (url.startsWith("file://") || url.startsWith("memory://")) return "pglite";
  if (!/^postgres(ql)?:\/\//.test(url)) throw new Error("unsupported database URL scheme");
  if (driver) return driver;
  return isNeonHost(url) ? "neon" : "pg";
}

function isNeonHost(url: string): boolean {
  try {
    const host = new URL(url).hostname.toLowerCase();
    return host === "neon.tech" || host.endsWith(".neon.tech");
  } catch {
    return false;
  }
}

/**
 * Opens the database named by `url` through the driver {@link dbKindFor} picks. Every driver is
 * loaded lazily, so a bundle only evaluates the one its URL needs (and the Lambda bundles never
 * carry PGlite at all, see infra/bundling.ts). Opening does not connect: the first query does.
 */
export async function openDb(url: string, opts: OpenDbOptions = {}): Promise<OpenedDb> {
  const kind = dbKindFor(url, opts.driver);
  switch (kind) {
    case "pglite":
      return openPglite(url, opts);
    case "neon":
      return openNeon(url, opts);
    case "pg":
      return openNodePostgres(url, opts);
    default: {
      const unreachable: never = kind;
      throw new Error(`no driver for ${String(unreachable)}`);
    }
  }
}

async function openPglite(url: string, opts: OpenDbOptions): Promise<OpenedDb> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { drizzle } = await import("drizzle-orm/pglite");
  const { migrate } = await import("drizzle-orm/pglite/migrator");
  let dataDir = url;
  if (url.startsWith("file://")) {
    dataDir = url.slice("file://".length);
    mkdirSync(dataDir, { recursive: true });
  }
  const client = await PGlite.create(dataDir);
  const db = drizzle({ client, schema, ...queryLogger(opts) });
  return {
    db: db as unknown as Db,
    kind: "pglite",
    migrate: (migrationsFolder = committedMigrations) => migrate(db, { migrationsFolder }),
    close: () => client.close(),
  };
}

async function openNeon(url: string, opts: OpenDbOptions): Promise<OpenedDb> {
  const { neonConfig, Pool } = await import("@neondatabase/serverless");
  const { default: ws } = await import("ws");
  const { drizzle } = await import("drizzle-orm/neon-serverless");
  const { migrate } = await import("drizzle-orm/neon-serverless/migrator");
  // Node 20 has no global WebSocket; on newer runtimes `ws` is still the faster choice.
  neonConfig.webSocketConstructor ??= ws;
  const pool = new Pool({
    connectionString: url,
    max: opts.maxConnections ?? POOL_MAX,
    idleTimeoutMillis: POOL_IDLE_TIMEOUT_MS,
    connectionTimeoutMillis: POOL_CONNECT_TIMEOUT_MS,
    ...(opts.statementTimeoutMs !== undefined && { statement_timeout: opts.statementTimeoutMs }),
  });
  // Without this listener the process dies when the server drops an idle connection
  // (Neon scales to zero; pg_terminate_backend); with it the next query reconnects.
  pool.on("error", (err: Error) => opts.onPoolError?.(err));
  const db = drizzle({ client: pool, schema, ...queryLogger(opts) });
  return {
    db: db as unknown as Db,
    kind: "neon",
    migrate: (migrationsFolder = committedMigrations) => migrate(db, { migrationsFolder }),
    close: () => pool.end(),
  };
}

async function openNodePostgres(url: string, opts: OpenDbOptions): Promise<OpenedDb> {
  const { default: pg } = await import("pg");
  const { drizzle } = await import("drizzle-orm/node-postgres");
  const { migrate } = await import("drizzle-orm/node-postgres/migrator");
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.maxConnections ?? POOL_MAX,
    idleTimeoutMillis: POOL_IDLE_TIMEOUT_MS,
    connectionTimeoutMillis: POOL_CONNECT_TIMEOUT_MS,
    ...(opts.statementTimeoutMs !== undefined && { statement_timeout: opts.statementTimeoutMs }),
  });
  // As for Neon: an idle client the server drops (RDS failover, pg_terminate_backend, a NAT
  // timeout) emits "error" on the pool; unheard, it kills the process.
  pool.on("error", (err: Error) => opts.onPoolError?.(err));
  const db = drizzle({ client: pool, schema, ...queryLogger(opts) });
  return {
    db: db as unknown as Db,
    kind: "pg",
    migrate: (migrationsFolder = committedMigrations) => migrate(db, { migrationsFolder }),
    close: () => pool.end(),
  };
}

const queryLogger = (opts: OpenDbOptions) =>
  opts.onQuery ? { logger: { logQuery: (query: string) => opts.onQuery?.(query) } } : {};
