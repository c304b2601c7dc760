import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type RequestListener } from "node:http";
import { isAbsolute, join, relative, resolve } from "node:path";
import { getRequestListener } from "@hono/node-server";
import { createAwsClients } from "../lib/compute/clients.js";
import { type Config, loadConfig } from "../lib/config.js";
import { lockDataDir, tightenModes } from "../lib/data-dir.js";
import { openMigratedDb, redactedUrl } from "../lib/db/start.js";
import { deadlineIn } from "../lib/deadline.js";
import { type Deps, systemClock } from "../lib/deps.js";
import { reconcileInstanceEvent } from "../lib/ec2events/reconcile.js";
import { createApp } from "../lib/http/app.js";
import { startLocalCloud } from "../lib/localcloud/index.js";
import { createLog } from "../lib/log.js";
import { exitOnStartError, portProblem } from "../lib/startup.js";
import { DEFAULT_LEASE_SECONDS, runSweep } from "../lib/sweep/run.js";

// `npm start`: the whole product on one machine — API, embedded PGlite, embedded local cloud.
// Whatever stops it from starting is one line naming the setting to change, exit status 2.

// Everything this process writes (PGlite's files, the local cloud's state, the admin token) is
// its owner's only: files 0600, directories 0700.
process.umask(0o077);

const config = (() => {
  try {
    return loadConfig(process.env, "local");
  } catch (err) {
    return exitOnStartError(err);
  }
})();
const log = createLog("local", config.logLevel);

// The local cloud announces instance state changes as EventBridge would, to the same handler the
// EC2-event Lambda runs (functions/ec2-events.ts), within the same deadline; a throw is a failed
// delivery, which the local cloud retries.
const EVENT_DEADLINE_MS = 27_000;
let eventDeps: Deps | undefined;

// One process per data directory: a second one would write the same PGlite files and state.
// The database and the local cloud may live outside it; those directories are locked too.
for (const dir of stateDirs(config)) {
  try {
    lockDataDir(dir);
  } catch (err) {
    exitOnStartError(err);
  }
}
config.adminToken ??= localAdminToken(config.dataDir);
config.platformUrl ??= `http://127.0.0.1:${config.port}`;

// The API's port is taken first, before the seconds a database's first start takes: a port in
// use is said at once. Requests that come before the app is ready wait for it.
let serveRequest: RequestListener | undefined;
const early: Parameters<RequestListener>[] = [];
const server = createServer((req, res) => {
  if (serveRequest) void serveRequest(req, res);
  else early.push([req, res]);
});
await new Promise<void>((ready, fail) => {
  server.once("error", fail);
  server.listen(config.port, "127.0.0.1", () => {
    server.off("error", fail);
    ready();
  });
})
  .catch(portProblem("PORT", config.port, "127.0.0.1"))
  .catch(exitOnStartError);

const cloud = config.localCloud
  ? await startLocalCloud({
      port: config.localCloudPort,
      dir: resolve(config.localCloudDir),
      buckets: [config.stagingBucket],
      eventTargets: [
        async (event) => {
          if (!eventDeps) throw new Error("not serving yet");
          const outcome = await reconcileInstanceEvent(eventDeps, event, {
            deadline: deadlineIn(EVENT_DEADLINE_MS),
          });
          log.debug("ec2 event", { eventId: event.id, ...outcome });
        },
      ],
    })
      .catch(portProblem("LOCALCLOUD_PORT", config.localCloudPort, "127.0.0.1"))
      .catch(exitOnStartError)
  : undefined;
const aws = createAwsClients({
  region: config.awsRegion,
  log,
  ...(cloud && {
    endpoint: cloud.url,
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  }),
});

// A wrong password or an unreachable host stops start-up here with one line (exit code 2).
const database = await openMigratedDb(config.databaseUrl, {
  driver: config.databaseDriver,
  onPoolError: (err) => log.warn("database connection dropped", { error: err.message }),
}).catch(exitOnStartError);
if (database.kind === "pglite" && config.databaseUrl.startsWith("file://")) {
  tightenModes(resolve(config.databaseUrl.slice("file://".length)));
}

const deps = { db: database.db, aws, clock: systemClock, log, config };
eventDeps = deps;
const app = createApp(deps);

serveRequest = getRequestListener(app.fetch);
for (const [req, res] of early.splice(0)) void serveRequest(req, res);
const url = `http://127.0.0.1:${config.port}`;
console.log(
  [
    "",
    `  workspace-control-plane is serving at ${url}`,
    `  API reference:  ${url}/docs`,
    `  Admin token:    ${config.adminToken}`,
    `  Database:       ${redactedUrl(config.databaseUrl)} (${database.kind})`,
    `  Local cloud:    ${cloud ? cloud.url : "off (ambient AWS configuration)"}`,
    "",
    `  export WCP=${url} ADMIN=${config.adminToken}`,
    "",
  ].join("\n"),
);

// The sweep on a timer, as the schedule runs it in AWS; one run at a time.
const intervalMs = config.sweepIntervalSeconds * 1000;
let sweeping: Promise<unknown> | null = null;
const sweepTimer = setInterval(() => {
  if (sweeping) return;
  // The same budget a scheduled run has in AWS (its timeout less a margin); runs never overlap.
  const deadline = Date.now() + 50_000;
  sweeping = runSweep(deps, {
    budget: { remainingMs: () => deadline - Date.now() },
    // A killed run blocks a pass for at most one interval.
    leaseSeconds: Math.min(DEFAULT_LEASE_SECONDS, config.sweepIntervalSeconds),
  })
    .catch((err: unknown) => log.error("sweep failed", { error: String(err) }))
    .finally(() => {
      sweeping = null;
    });
}, intervalMs);

const SHUTDOWN_SWEEP_WAIT_MS = 5_000;
let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info("shutting down", { signal });
  clearInterval(sweepTimer);
  // A sweep run in progress gets a few seconds to finish; abandoning it is safe (every write is
  // conditional, its leases lapse), and Ctrl-C should not wait out a 50 s budget.
  await Promise.race([sweeping, new Promise((r) => setTimeout(r, SHUTDOWN_SWEEP_WAIT_MS).unref())]);
  server.close();
  await cloud?.close();
  await database.close();
  process.exit(0);
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));

/** The admin token kept in the data directory (created once, mode 0600) when ADMIN_TOKEN is unset. */
function localAdminToken(dataDir: string): string {
  const file = join(dataDir, "admin-token");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const token = randomBytes(32).toString("base64url");
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}

/**
 * The directories this process keeps state in, each locked: DATA_DIR for the admin token it
 * generates, PGlite's directory and the local cloud's. One inside DATA_DIR is covered by
 * DATA_DIR's lock; one elsewhere (DATABASE_URL=file://…, LOCALCLOUD_DIR=…) gets its own.
 */
function stateDirs(c: Config): string[] {
  const dataDir = resolve(c.dataDir);
  const used: string[] = [];
  if (c.adminToken === undefined) used.push(dataDir);
  if (c.databaseUrl.startsWith("file://"))
    used.push(resolve(c.databaseUrl.slice("file://".length)));
  if (c.localCloud) used.push(resolve(c.localCloudDir));
  const inside = (dir: string, parent: string) => {
    const rel = relative(parent, dir);
    return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
  };
  return [...new Set(used.map((dir) => (inside(dir, dataDir) ? dataDir : dir)))];
}
