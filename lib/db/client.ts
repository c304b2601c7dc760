import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { neonConfig, Pool } from "@neondatabase/serverless";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import ws from "ws";
import * as schema from "./schema.js";

/** The one database handle every verb receives, whichever driver is behind it. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface OpenedDb {
  db: Db;
  kind: "pglite" | "neon";
  /** Applies the committed migrations (idempotent). */
  migrate(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenDbOptions {
  /** Called when an idle pooled connection fails; the pool replaces it on the next query. */
  onPoolError?: (err: Error) => void;
  /** Pool size for the Neon driver. A Lambda container serves one request at a time. */
  maxConnections?: number;
  /** Sees every statement sent (one round trip each): benchmarks count them. */
  onQuery?: (query: string) => void;
}

const migrationsFolder = fileURLToPath(new URL("./migrations", import.meta.url));

/**
 * Opens the database named by `url`: `file://DIR` or `memory://` → embedded PGlite;
 * `postgres://…` → the Neon serverless driver's WebSocket `Pool`.
 *
 * PGlite is loaded lazily so the Lambda bundles never carry it.
 */
export async function openDb(url: string, opts: OpenDbOptions = {}): Promise<OpenedDb> {
  if (url.startsWith("file://") || url.startsWith("memory://")) {
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
      migrate: () => migrate(db, { migrationsFolder }),
      close: () => client.close(),
    };
  }
  if (!/^postgres(ql)?:\/\//.test(url)) throw new Error("unsupported database URL scheme");

  const { drizzle } = await import("drizzle-orm/neon-serverless");
  const { migrate } = await import("drizzle-orm/neon-serverless/migrator");
  // Node 20 has no global WebSocket; on newer runtimes `ws` is still the faster choice.
  neonConfig.webSocketConstructor ??= ws;
  const pool = new Pool({ connectionString: url, max: opts.maxConnections ?? 4 });
  // Without this listener the process dies when the server drops an idle connection
  // (Neon scales to zero; pg_terminate_backend); with it the next query reconnects.
  pool.on("error", (err: Error) => opts.onPoolError?.(err));
  const db = drizzle({ client: pool, schema, ...queryLogger(opts) });
  return {
    db: db as unknown as Db,
    kind: "neon",
    migrate: () => migrate(db, { migrationsFolder }),
    close: () => pool.end(),
  };
}

const queryLogger = (opts: OpenDbOptions) =>
  opts.onQuery ? { logger: { logQuery: (query: string) => opts.onQuery?.(query) } } : {};
