import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { serve } from "@hono/node-server";
import { createAwsClients } from "../lib/compute/clients.js";
import { loadConfig } from "../lib/config.js";
import { exitOnDatabaseStartError, openMigratedDb, redactedUrl } from "../lib/db/start.js";
import { deadlineIn } from "../lib/deadline.js";
import { type Deps, systemClock } from "../lib/deps.js";
import { reconcileInstanceEvent } from "../lib/ec2events/reconcile.js";
import { createApp } from "../lib/http/app.js";
import { startLocalCloud } from "../lib/localcloud/index.js";
import { createLog } from "../lib/log.js";
import { DEFAULT_LEASE_SECONDS, runSweep } from "../lib/sweep/run.js";

// `npm start`: the whole product on one machine — API, embedded PGlite, embedded local cloud.

const DATA_DIR = "./.data";

/** The admin token: ADMIN_TOKEN, else one generated once and kept under ./.data (mode 0600). */
function localAdminToken(): string {
  const file = `${DATA_DIR}/admin-token`;
  mkdirSync(DATA_DIR, { recursive: true });
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  const token = randomBytes(32).toString("base64url");
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}

const env = { ...process.env };
env.ADMIN_TOKEN ??= localAdminToken();
const config = loadConfig(env, "local");
config.platformUrl ??= `http://127.0.0.1:${config.port}`;
const log = createLog("local", config.logLevel);

// The local cloud announces instance state changes as EventBridge would, to the same handler the
// EC2-event Lambda runs (functions/ec2-events.ts), within the same deadline; a throw is a failed
// delivery, which the local cloud retries.
const EVENT_DEADLINE_MS = 27_000;
let eventDeps: Deps | undefined;
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
  : undefined;
const aws = createAwsClients({
  region: config.awsRegion,
  ...(cloud && {
    endpoint: cloud.url,
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  }),
});

// A wrong password or an unreachable host stops start-up here with one line (exit code 2).
const database = await openMigratedDb(config.databaseUrl, {
  driver: config.databaseDriver,
  onPoolError: (err) => log.warn("database connection dropped", { error: err.message }),
}).catch(exitOnDatabaseStartError);

const deps = { db: database.db, aws, clock: systemClock, log, config };
eventDeps = deps;
const app = createApp(deps);

const server = serve({ fetch: app.fetch, port: config.port, hostname: "127.0.0.1" }, (info) => {
  const url = `http://127.0.0.1:${info.port}`;
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
});

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

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info("shutting down", { signal });
  clearInterval(sweepTimer);
  await sweeping;
  server.close();
  await cloud?.close();
  await database.close();
  process.exit(0);
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
