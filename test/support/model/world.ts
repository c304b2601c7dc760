import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { AwsClients } from "../../../lib/compute/clients.js";
import type { OpenedDb } from "../../../lib/db/client.js";
import { openDb } from "../../../lib/db/client.js";
import type { Deps, Log } from "../../../lib/deps.js";
import { systemClock } from "../../../lib/deps.js";
import { createApp } from "../../../lib/http/app.js";
import { type ComputeCloud, startComputeCloud } from "../../integration/compute/cloud.js";
import { testConfig, truncateAll } from "../context.js";
import { createTestDatabase } from "../pg-database.js";

/**
 * The model test's world: one PostgreSQL database reached through several pools, as a fleet of
 * Lambda containers reaches it — each API "container" has its own pool, its own SDK clients and
 * its own app, and the sweep has another — so concurrent callers really are concurrent sessions.
 * Each run gets a fresh local cloud, a fresh copy of the sample plugins (the model publishes new
 * versions into it) and empty tables.
 */

/** Containers serving the API; a burst spreads its requests over them. */
export const API_CONTAINERS = 3;

// Client settings of every container: an answer held back longer than the request timeout is
// lost while the call goes ahead (the local cloud's latency fault), as a real service finishes
// a request its caller gave up on; two attempts, so the SDK's retry of a lost answer is in play.
const CLIENTS = { maxAttempts: 2, requestTimeoutMs: 500, connectionTimeoutMs: 500 };

/** Product settings of a run: short graces and waits, so a run is seconds, not minutes. */
export const RUN_ENV = {
  // Longer than the largest describe lag the model sets (400 ms), as AWS's lag is (usually)
  // shorter than the default 300 s grace; short enough that sweeps within a run pass it.
  LAUNCH_GRACE_SECONDS: "1",
  // Installs answer 202 after a second and the sweep finishes them: both paths get exercised.
  INSTALL_SYNC_WAIT_SECONDS: "1",
  // Within reach of a run's time steps, so giving up on a workspace is part of what is tested.
  PROVISION_TIMEOUT_SECONDS: "300",
  REMOTE_STALE_AFTER_SECONDS: "90",
};

export interface ModelWorld {
  /** The test's own pool, for reading the truth and for moving the database's clock. */
  observer: OpenedDb;
  /** Starts a run: empty tables, a fresh cloud and plugin registry, new containers. */
  beginRun(runId: string): Promise<RunWorld>;
  close(): Promise<void>;
}

/** One API caller: `app.request` on one container, with a bearer token (or the admin's). */
export type Caller = (
  method: string,
  path: string,
  opts?: { body?: unknown; token?: string | null },
) => Promise<Response>;

export interface RunWorld {
  cloud: ComputeCloud;
  /** `DEPLOYMENT_ID` of the run: its instances carry it as `wcp:deployment`. */
  deploymentId: string;
  /** The model's own SDK clients, for what it asks the cloud itself. */
  observerAws: AwsClients;
  /** The `local://` registry of this run (a copy of `plugins/`). */
  pluginsDir: string;
  apis: Caller[];
  /** The sweep's deps; its clock runs `aheadMs` ahead of the wall clock. */
  sweepDeps(aheadMs: number): Deps;
  /** Errors the product logged this run (sweep passes that threw, failed operations). */
  loggedErrors: { message: string; extra: Record<string, unknown>[] }[];
  end(): Promise<void>;
}

/**
 * Opens the world over a fresh database on the PostgreSQL server at `adminUrl` (a role that may
 * CREATE DATABASE), migrated once.
 */
export async function openModelWorld(adminUrl: string): Promise<ModelWorld> {
  const url = await createTestDatabase(adminUrl);
  const open = (max: number) => openDb(url, { maxConnections: max, onPoolError: () => {} });
  const observer = await open(4);
  await observer.migrate();
  // The pool of a Lambda container: POOL_MAX (4) connections.
  const pools = await Promise.all(Array.from({ length: API_CONTAINERS + 1 }, () => open(4)));
  const sweeper = pools[API_CONTAINERS] as OpenedDb;

  return {
    observer,
    async beginRun(runId) {
      await truncateAll(observer);
      const cloud = await startComputeCloud();
      const pluginsDir = await mkdtemp(join(tmpdir(), "wcp-model-plugins-"));
      await cp(resolve("plugins"), pluginsDir, { recursive: true });
      const config = testConfig({
        ...RUN_ENV,
        PLUGINS_DIR: pluginsDir,
        // Each run is its own deployment: nothing a run launched is ever another run's concern.
        DEPLOYMENT_ID: `model-${runId}`,
      });
      const loggedErrors: RunWorld["loggedErrors"] = [];
      const log: Log = {
        debug() {},
        info() {},
        warn() {},
        error: (message, ...extra) => loggedErrors.push({ message, extra }),
      };
      const depsOf = (db: OpenedDb): Deps => ({
        db: db.db,
        aws: cloud.clients(CLIENTS),
        clock: systemClock,
        log,
        config,
      });
      const apis = pools.slice(0, API_CONTAINERS).map((pool): Caller => {
        const app = createApp(depsOf(pool));
        return async (method, path, opts = {}) => {
          const token = opts.token === undefined ? config.adminToken : opts.token;
          return app.request(path, {
            method,
            headers: {
              ...(token !== null && token !== undefined && { authorization: `Bearer ${token}` }),
              ...(opts.body !== undefined && { "content-type": "application/json" }),
            },
            ...(opts.body !== undefined && { body: JSON.stringify(opts.body) }),
          });
        };
      });
      const sweepBase = depsOf(sweeper);
      return {
        cloud,
        deploymentId: config.deploymentId,
        observerAws: cloud.clients(CLIENTS),
        pluginsDir,
        apis,
        sweepDeps: (aheadMs) =>
          aheadMs === 0
            ? sweepBase
            : { ...sweepBase, clock: { now: () => new Date(Date.now() + aheadMs) } },
        loggedErrors,
        async end() {
          await cloud.close();
          await rm(pluginsDir, { recursive: true, force: true });
        },
      };
    },
    async close() {
      for (const pool of pools) await pool.close();
      await observer.close();
    },
  };
}
