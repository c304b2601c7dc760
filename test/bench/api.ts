import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import autocannon from "autocannon";
import { Hono } from "hono";
import { createApp } from "../../lib/http/app.js";
import { getWorkspace } from "../../lib/workspaces/queries.js";
import { ADMIN_TOKEN } from "../support/context.js";
import { createWorld, round } from "./support.js";

type Init = { method: "GET" | "POST"; headers: Record<string, string> };

export interface ApiFigures {
  route: string;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  roundTripsPerRequest: number | null;
}

async function load(url: string, init: Init, seconds: number) {
  const result = await autocannon({
    url,
    method: init.method,
    headers: init.headers,
    connections: 10,
    duration: seconds,
  });
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`bench: ${url} answered ${result.non2xx} non-2xx and ${result.errors} errors`);
  }
  return result;
}

export interface InProcessFigures {
  /** One `getWorkspace` query on PGlite, the route's only round trip. */
  queryMs: number;
  /** `app.request` of the whole route (auth, validation, query, serialisation), no network. */
  requestMs: number;
}

/** Where a read's time goes: the route against its single query, 2,000 calls each. */
async function inProcess(
  run: () => Promise<unknown>,
  query: () => Promise<unknown>,
): Promise<InProcessFigures> {
  const time = async (fn: () => Promise<unknown>) => {
    for (let i = 0; i < 200; i++) await fn();
    const started = performance.now();
    for (let i = 0; i < 2000; i++) await fn();
    return round((performance.now() - started) / 2000, 3);
  };
  return { queryMs: await time(query), requestMs: await time(run) };
}

/** Requests/s and latency of two product routes against a bare Hono route, same process. */
export async function benchApi(
  seconds = 5,
): Promise<{ routes: ApiFigures[]; inProcess: InProcessFigures }> {
  const world = await createWorld();
  const app = createApp(world.deps);
  const bare = new Hono().get("/bare", (c) => c.json({ ok: true }));
  const servers = [
    serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }),
    serve({ fetch: bare.fetch, port: 0, hostname: "127.0.0.1" }),
  ];
  await new Promise((r) => setTimeout(r, 100));
  const [appPort, barePort] = servers.map((s) => (s.address() as AddressInfo).port);
  const base = `http://127.0.0.1:${appPort}`;
  try {
    const created = await app.request("/workspaces", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "bench", runtime: "external" }),
    });
    const { workspace, token } = (await created.json()) as {
      workspace: { id: string };
      token: string;
    };
    const figures: ApiFigures[] = [];
    const run = async (route: string, url: string, init: Init, counted: boolean) => {
      world.queries.count = 0;
      const r = await load(url, init, seconds);
      figures.push({
        route,
        requestsPerSecond: round(r.requests.average, 0),
        p50Ms: r.latency.p50,
        p99Ms: r.latency.p99,
        roundTripsPerRequest: counted ? round(world.queries.count / r.requests.total, 2) : null,
      });
    };
    await run(
      "bare Hono GET /bare (baseline)",
      `http://127.0.0.1:${barePort}/bare`,
      { method: "GET", headers: {} },
      false,
    );
    await run(
      "GET /workspaces/:id (admin)",
      `${base}/workspaces/${workspace.id}`,
      { method: "GET", headers: { authorization: `Bearer ${ADMIN_TOKEN}` } },
      true,
    );
    await run(
      "POST /registry/heartbeat (workspace token)",
      `${base}/registry/heartbeat`,
      { method: "POST", headers: { authorization: `Bearer ${token}` } },
      true,
    );
    const split = await inProcess(
      async () =>
        app.request(`/workspaces/${workspace.id}`, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        }),
      () => getWorkspace(world.deps.db, workspace.id),
    );
    return { routes: figures, inProcess: split };
  } finally {
    for (const s of servers) s.close();
    await world.close();
  }
}
