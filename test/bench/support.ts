import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAwsClients } from "../../lib/compute/clients.js";
import { openDb } from "../../lib/db/client.js";
import { workspaces } from "../../lib/db/schema.js";
import { type Deps, silentLog, systemClock } from "../../lib/deps.js";
import type { App } from "../../lib/http/app.js";
import type { EventSink } from "../../lib/localcloud/events.js";
import { type LocalCloud, startLocalCloud } from "../../lib/localcloud/index.js";
import { runSweep } from "../../lib/sweep/run.js";
import { ADMIN_TOKEN, testConfig } from "../support/context.js";
import { launchInstances } from "../support/fleet.js";
import { createTestDatabase } from "../support/pg-database.js";
import { type PostgresServer, startPostgres } from "../support/postgres.js";

/**
 * A bench world: a local cloud, a database with the schema (in-memory PGlite, or a throwaway
 * PostgreSQL 15 server through node-postgres), deps over both, counters.
 */
export interface World {
  cloud: LocalCloud;
  dbKind: "pglite" | "postgres";
  deps: Deps;
  queries: { count: number };
  control(
    path: string,
    init?: { method?: string; body?: unknown },
  ): Promise<Record<string, unknown>>;
  awsCalls(name?: string): Promise<number>;
  close(): Promise<void>;
}

export interface WorldOptions {
  db?: "pglite" | "postgres";
  /** Per-attempt AWS request timeout; default 30 s. */
  requestTimeoutMs?: number;
  /** Targets of the local cloud's EC2 state-change events (its default delays); default none. */
  eventTargets?: EventSink[];
}

export async function createWorld(
  env: Record<string, string> = {},
  opts: WorldOptions = {},
): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), "wcp-bench-"));
  const config = testConfig({ LAUNCH_GRACE_SECONDS: "1", INSTALL_SYNC_WAIT_SECONDS: "10", ...env });
  const cloud = await startLocalCloud({
    port: 0,
    dir,
    credentials: { bench: "bench" },
    buckets: [config.stagingBucket],
    bootDelayMs: 10,
    ssmOnlineDelayMs: 10,
    invocationVisibleDelayMs: 200,
    ...(opts.eventTargets && { eventTargets: opts.eventTargets }),
  });
  const queries = { count: 0 };
  let server: PostgresServer | undefined;
  let url = "memory://";
  if (opts.db === "postgres") {
    server = await startPostgres();
    url = await createTestDatabase(server.url);
  }
  const opened = await openDb(url, {
    onQuery: () => {
      queries.count++;
    },
    onPoolError: () => {},
  });
  await opened.migrate();
  const aws = createAwsClients({
    region: "us-east-1",
    endpoint: cloud.url,
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
    maxAttempts: 3,
    requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
  });
  const deps: Deps = {
    db: opened.db,
    aws,
    clock: systemClock,
    log: silentLog,
    config,
  };
  const control = async (path: string, init: { method?: string; body?: unknown } = {}) => {
    const res = await fetch(`${cloud.url}/_localcloud${path}`, {
      method: init.method ?? "GET",
      ...(init.body !== undefined && {
        body: JSON.stringify(init.body),
        headers: { "content-type": "application/json" },
      }),
    });
    return (await res.json()) as Record<string, unknown>;
  };
  return {
    cloud,
    dbKind: opts.db ?? "pglite",
    deps,
    queries,
    control,
    async awsCalls(name?: string) {
      const calls = (await control("/stats")).calls as Record<string, number>;
      if (name) return calls[name] ?? 0;
      return Object.values(calls).reduce((a, b) => a + b, 0);
    },
    async close() {
      await opened.close();
      await server?.stop();
      await cloud.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `n` running instances (20 per RunInstances call) and an online row for each. */
export async function seedFleet(
  world: World,
  n: number,
): Promise<{ id: string; instanceId: string }[]> {
  const instanceIds = await launchInstances(world.deps.aws.ec2, n);
  const rows: { id: string; instanceId: string }[] = [];
  for (let i = 0; i < instanceIds.length; i += 1000) {
    const inserted = await world.deps.db
      .insert(workspaces)
      .values(
        instanceIds.slice(i, i + 1000).map((instanceId, j) => ({
          name: `bench-${i + j}`,
          runtime: "langgraph",
          status: "online" as const,
          instanceId,
          generation: 1,
          launchedAt: new Date(Date.now() - 3_600_000),
        })),
      )
      .returning({ id: workspaces.id, instanceId: workspaces.instanceId });
    rows.push(...inserted.map((r) => ({ id: r.id, instanceId: r.instanceId ?? "" })));
  }
  return rows;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** The admin's JSON headers for a bench's in-process app. */
export const adminHeaders = {
  authorization: `Bearer ${ADMIN_TOKEN}`,
  "content-type": "application/json",
};

/**
 * An instance-backed workspace created through the API and brought `online` by the readiness
 * pass (its instance runs, its SSM agent is Online).
 */
export async function onlineWorkspace(
  world: World,
  app: App,
): Promise<{ id: string; instanceId: string }> {
  const created = await app.request("/workspaces", {
    method: "POST",
    headers: adminHeaders,
    body: JSON.stringify({ name: "bench" }),
  });
  const { workspace } = (await created.json()) as { workspace: { id: string; instanceId: string } };
  for (let i = 0; i < 100; i++) {
    await runSweep(world.deps, { budget: { remainingMs: () => 30_000 }, passes: ["readiness"] });
    const got = await app.request(`/workspaces/${workspace.id}`, { headers: adminHeaders });
    if (((await got.json()) as { workspace: { status: string } }).workspace.status === "online") {
      return workspace;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("bench: the workspace did not come online");
}
