import { resolve } from "node:path";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { eq, sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { workspaceEvents, workspaces } from "../../../lib/db/schema.js";
import type { Deps } from "../../../lib/deps.js";
import { createApp } from "../../../lib/http/app.js";
import { type PassName, runSweep } from "../../../lib/sweep/run.js";
import type { Workspace } from "../../../lib/workspaces/model.js";
import { instanceToken } from "../../../lib/workspaces/tokens.js";
import {
  ADMIN_TOKEN,
  createTestContext,
  dbKind,
  type TestContext,
  testConfig,
} from "../../support/context.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// Stop, start, hibernate, idle auto-stop and wake (issue 14), over the local cloud's EC2 states
// through the real SDK, on PGlite and PostgreSQL. An intentional stop is never confused with a
// crash: only EC2 confirms `stopped`, only readiness `online`.

let c: ComputeCloud;
let t: TestContext;

beforeAll(async () => {
  c = await startComputeCloud();
  t = await createTestContext({
    env: { PLUGINS_DIR: resolve("plugins"), LAUNCH_GRACE_SECONDS: "1" },
    aws: c.clients({ maxAttempts: 2, requestTimeoutMs: 5_000 }),
  });
});
afterAll(async () => {
  await t?.close();
  await c?.close();
});
beforeEach(async () => {
  await t.reset();
});
afterEach(async () => {
  await c.clearFaults();
});

const later = (aheadMs: number): Deps => ({
  ...t.deps,
  clock: { now: () => new Date(Date.now() + aheadMs) },
});
const sweep = (passes: PassName[], deps: Deps = t.deps) =>
  runSweep(deps, { budget: { remainingMs: () => 60_000 }, passes });
const rowOf = async (id: string) =>
  (await t.opened.db.select().from(workspaces).where(eq(workspaces.id, id)))[0];
const workspaceOf = async (res: Response) =>
  ((await res.json()) as { workspace: Workspace }).workspace;
const errorOf = async (res: Response) =>
  [res.status, ((await res.json()) as { error: { code: string; hint?: string } }).error] as const;

/** Sweeps readiness and power until the workspace reads `status`, as the schedule would. */
async function sweepUntil(id: string, status: string, deps: Deps = t.deps) {
  return waitFor(async () => {
    await sweep(["readiness", "power"], deps);
    const row = await rowOf(id);
    return row?.status === status ? row : undefined;
  }, 15_000);
}

async function createOnline(body: Record<string, unknown> = {}): Promise<Workspace> {
  const res = await t.admin("POST", "/workspaces", { name: "life", ...body });
  expect(res.status).toBe(201);
  const ws = await workspaceOf(res);
  await sweepUntil(ws.id, "online");
  return ws;
}

describe(`lifecycle over ${dbKind()}`, () => {
  it("stop → stopped once EC2 says so (SSM no longer lists it) → start → online; both idempotent", async () => {
    // Prepare
    const ws = await createOnline();

    // Act + Assess: stop.
    const stopping = await t.admin("POST", `/workspaces/${ws.id}/stop`);
    expect(stopping.status).toBe(202);
    expect(await workspaceOf(stopping)).toMatchObject({
      status: "stopping",
      stoppedReason: "user",
    });
    const stopped = await sweepUntil(ws.id, "stopped");
    expect(stopped).toMatchObject({ instanceId: ws.instanceId, hibernated: false });
    const view = await c.instance(ws.instanceId ?? "");
    expect(view.state).toBe("stopped");
    expect(view.ssmPingStatus).toBeNull();
    expect((await t.admin("POST", `/workspaces/${ws.id}/stop`)).status).toBe(200);

    // Act + Assess: start, through readiness.
    const starting = await t.admin("POST", `/workspaces/${ws.id}/start`);
    expect(starting.status).toBe(202);
    expect((await workspaceOf(starting)).status).toBe("starting");
    const online = await sweepUntil(ws.id, "online");
    expect(online).toMatchObject({ instanceId: ws.instanceId, generation: 1 });
    expect((await t.admin("POST", `/workspaces/${ws.id}/start`)).status).toBe(200);

    const events = await t.opened.db
      .select()
      .from(workspaceEvents)
      .where(eq(workspaceEvents.workspaceId, ws.id))
      .orderBy(workspaceEvents.seq);
    expect(events.map((e) => e.to)).toEqual([
      "provisioning",
      "provisioning",
      "online",
      "stopping",
      "stopped",
      "starting",
      "online",
    ]);
  });

  it("liveness never reads a stop as a crash, and still marks a crashed one offline", async () => {
    // Prepare: one stopped on purpose, one crashed.
    const [quiet, crashed] = await Promise.all([createOnline(), createOnline()]);
    expect((await t.admin("POST", `/workspaces/${quiet.id}/stop`)).status).toBe(202);
    await sweepUntil(quiet.id, "stopped");
    await c.crash(crashed.instanceId ?? "");

    // Act
    await sweep(["liveness", "power"]);

    // Assess
    expect((await rowOf(quiet.id))?.status).toBe("stopped");
    expect((await rowOf(crashed.id))?.status).toBe("offline");
  });

  it("hibernates a workspace launched able to; refuses one that was not; EC2's fallback is recorded", async () => {
    // Prepare
    const able = await createOnline({ hibernation: true });
    const plain = await createOnline();
    const view = await c.instance(able.instanceId ?? "");

    // Act
    const refused = await errorOf(
      await t.admin("POST", `/workspaces/${plain.id}/stop`, { hibernate: true }),
    );
    const hibernating = await t.admin("POST", `/workspaces/${able.id}/stop`, { hibernate: true });
    const hibernated = await sweepUntil(able.id, "stopped");

    // Assess
    expect(view).toMatchObject({ hibernationConfigured: true });
    expect(refused[0]).toBe(400);
    expect(refused[1].code).toBe("VALIDATION_FAILED");
    expect((await rowOf(plain.id))?.status).toBe("online");
    expect(hibernating.status).toBe(202);
    expect(hibernated).toMatchObject({ hibernated: true, stoppedReason: "user" });

    // EC2 may fall back to a plain stop: the record says what happened.
    expect((await t.admin("POST", `/workspaces/${able.id}/start`)).status).toBe(202);
    await sweepUntil(able.id, "online");
    await fetch(`${c.url}/_localcloud/settings`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ hibernationFallback: true }),
    });
    try {
      expect(
        (await t.admin("POST", `/workspaces/${able.id}/stop`, { hibernate: true })).status,
      ).toBe(202);
      expect(await sweepUntil(able.id, "stopped")).toMatchObject({ hibernated: false });
    } finally {
      await fetch(`${c.url}/_localcloud/settings`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ hibernationFallback: false }),
      });
    }
  });

  it("refuses what cannot hibernate at creation, external workspaces and removed ones", async () => {
    // A tier whose instance type cannot hibernate (g5: not a hibernation family).
    const gpuApp = createApp({
      ...t.deps,
      config: testConfig({ TIER_INSTANCE_TYPES: '{"1":"t3.small","5":"g5.xlarge"}' }),
    });
    const big = await gpuApp.request("/workspaces", {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "gpu", hibernation: true, tier: 5 }),
    });
    const ext = await t.admin("POST", "/workspaces", { name: "ext", runtime: "external" });
    const extWs = await workspaceOf(ext);
    const gone = await createOnline();
    await t.admin("DELETE", `/workspaces/${gone.id}`);
    const idleHibernate = await t.admin("POST", "/workspaces", {
      name: "x",
      idleAction: "hibernate",
    });

    const bigError = await errorOf(big);
    expect(bigError[0]).toBe(400);
    expect(JSON.stringify(bigError[1])).toContain("g5.xlarge");
    expect((await errorOf(idleHibernate))[1].code).toBe("VALIDATION_FAILED");
    expect((await errorOf(await t.admin("POST", `/workspaces/${extWs.id}/stop`)))[1].code).toBe(
      "EXTERNAL_RUNTIME",
    );
    expect((await errorOf(await t.admin("POST", `/workspaces/${extWs.id}/start`)))[1].code).toBe(
      "EXTERNAL_RUNTIME",
    );
    expect((await errorOf(await t.admin("POST", `/workspaces/${gone.id}/stop`)))[1].code).toBe(
      "WORKSPACE_REMOVED",
    );
    expect((await errorOf(await t.admin("POST", `/workspaces/${gone.id}/start`)))[1].code).toBe(
      "WORKSPACE_REMOVED",
    );
  });

  it("a stop EC2 could not take stays stopping and the sweep re-drives it; never a status EC2 did not confirm", async () => {
    // Prepare
    const ws = await createOnline();
    await c.fault({
      service: "ec2",
      action: "StopInstances",
      error: "RequestLimitExceeded",
      times: 2,
    });

    // Act
    const res = await t.admin("POST", `/workspaces/${ws.id}/stop`);
    const afterRequest = await rowOf(ws.id);
    const instanceAfterRequest = (await c.instance(ws.instanceId ?? "")).state;
    const stopped = await sweepUntil(ws.id, "stopped", later(60_000));

    // Assess
    expect(res.status).toBe(202);
    expect(afterRequest?.status).toBe("stopping");
    expect(instanceAfterRequest).toBe("running");
    expect(stopped.status).toBe("stopped");
  });

  it("a stopped workspace whose instance vanished says so, and start relaunches it with its plugins", async () => {
    // Prepare: installed, stopped, then the instance is terminated outside the product.
    const ws = await createOnline();
    const installed = await t.admin("POST", `/workspaces/${ws.id}/plugins`, {
      source: "local://code-review",
    });
    expect(installed.status).toBe(200);
    expect((await t.admin("POST", `/workspaces/${ws.id}/stop`)).status).toBe(202);
    await sweepUntil(ws.id, "stopped");
    await t.deps.aws.ec2.send(
      new TerminateInstancesCommand({ InstanceIds: [ws.instanceId ?? ""] }),
    );
    await waitFor(async () =>
      (await c.instance(ws.instanceId ?? "")).state === "terminated" ? true : undefined,
    );

    // Act
    await sweep(["power"], later(10_000));
    const noticed = await rowOf(ws.id);
    const started = await t.admin("POST", `/workspaces/${ws.id}/start`);
    const online = await sweepUntil(ws.id, "online");
    const reapplied = await waitFor(async () => {
      await sweep(["plugins"]);
      const rows = await t.opened.db.execute(
        sql`select state, instance_id from workspace_plugins where workspace_id = ${ws.id}`,
      );
      const [row] = (rows as unknown as { rows: { state: string; instance_id: string }[] }).rows;
      return row?.state === "installed" ? row : undefined;
    }, 15_000);

    // Assess
    expect(noticed).toMatchObject({ status: "stopped", instanceId: null });
    expect(noticed?.lastError).toMatch(/no longer exists/);
    expect(started.status).toBe(202);
    expect(online.generation).toBe(2);
    expect(online.instanceId).not.toBe(ws.instanceId);
    expect(reapplied.instance_id).toBe(online.instanceId);
  });

  it("idle auto-stop stops an idle workspace (reason idle) and spares one with busy heartbeats", async () => {
    // Prepare: two workspaces with a 60 s idle setting; one's agent reports real work.
    const idle = await createOnline({ idleStopSeconds: 60 });
    const busy = await createOnline({ idleStopSeconds: 60 });
    await t.opened.db.execute(
      sql`update workspaces set updated_at = now() - interval '2 minutes', last_activity_at = now() - interval '2 minutes'`,
    );
    const token = instanceToken(ADMIN_TOKEN, busy.id, 1).token;
    const beat = await t.app.request("/registry/heartbeat", {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ activity: "busy" }),
    });

    // Act
    const summary = await sweep(["idle"]);
    const stopped = await sweepUntil(idle.id, "stopped");

    // Assess
    expect(beat.status).toBe(200);
    expect(summary.passes.idle.checked).toBe(1);
    expect(stopped).toMatchObject({ stoppedReason: "idle" });
    expect((await rowOf(busy.id))?.status).toBe("online");
  });

  it("an idle heartbeat keeps a workspace alive but not active; POST …/activity is activity", async () => {
    // Prepare
    const ws = await createOnline({ idleStopSeconds: 60 });
    await t.opened.db.execute(
      sql`update workspaces set updated_at = now() - interval '2 minutes' where id = ${ws.id}`,
    );
    const token = instanceToken(ADMIN_TOKEN, ws.id, 1).token;
    await t.as(token, "POST", "/registry/heartbeat");
    const activity = await t.admin("POST", `/workspaces/${ws.id}/activity`);

    // Act
    const spared = await sweep(["idle"]);

    // Assess
    expect(activity.status).toBe(200);
    expect((await workspaceOf(activity)).lastActivityAt).not.toBeNull();
    expect(spared.passes.idle.checked).toBe(0);
  });

  it("PATCH changes the name and idle settings; refuses hibernate for a workspace that cannot", async () => {
    const ws = await createOnline();
    const patched = await t.admin("PATCH", `/workspaces/${ws.id}`, {
      name: "renamed",
      idleStopSeconds: 120,
    });
    const refused = await t.admin("PATCH", `/workspaces/${ws.id}`, { idleAction: "hibernate" });

    expect(patched.status).toBe(200);
    expect(await workspaceOf(patched)).toMatchObject({
      name: "renamed",
      idleStopSeconds: 120,
      idleAction: "stop",
    });
    expect((await errorOf(refused))[1].code).toBe("VALIDATION_FAILED");
  });

  it("GET …/wait answers as soon as the status comes, 408 WAIT_TIMEOUT otherwise", async () => {
    // Prepare
    const res = await t.admin("POST", "/workspaces", { name: "waited" });
    const ws = await workspaceOf(res);

    // Act: wait for online while the sweep brings it there.
    const waiting = t.admin(
      "GET",
      `/workspaces/${ws.id}/wait?status=online,failed&timeoutSeconds=10`,
    );
    await sweepUntil(ws.id, "online");
    const reached = await waiting;
    const timedOut = await errorOf(
      await t.admin("GET", `/workspaces/${ws.id}/wait?status=stopped&timeoutSeconds=0`),
    );
    const bad = await errorOf(await t.admin("GET", `/workspaces/${ws.id}/wait?status=asleep`));

    // Assess
    expect(reached.status).toBe(200);
    expect((await workspaceOf(reached)).status).toBe("online");
    expect(timedOut[0]).toBe(408);
    expect(timedOut[1].code).toBe("WAIT_TIMEOUT");
    expect(bad[0]).toBe(400);
  });

  it("plugins on a stopped workspace: 409 WORKSPACE_STOPPED with the way out, ?wake=true starts it", async () => {
    // Prepare
    const ws = await createOnline();
    expect((await t.admin("POST", `/workspaces/${ws.id}/stop`)).status).toBe(202);
    await sweepUntil(ws.id, "stopped");

    // Act
    const refused = await errorOf(
      await t.admin("POST", `/workspaces/${ws.id}/plugins`, { source: "local://code-review" }),
    );
    const woken = await t.admin("POST", `/workspaces/${ws.id}/plugins?wake=true`, {
      source: "local://code-review",
    });
    const body = (await woken.json()) as { status: string; workspace: Workspace; next: string };

    // Assess
    expect(refused[0]).toBe(409);
    expect(refused[1].code).toBe("WORKSPACE_STOPPED");
    expect(refused[1].hint).toContain(`POST /workspaces/${ws.id}/start`);
    expect(woken.status).toBe(202);
    expect(body).toMatchObject({ status: "waking", workspace: { status: "starting" } });
    expect(body.next).toContain("wait?status=online");
    expect((await sweepUntil(ws.id, "online")).status).toBe("online");
  });

  it("commands on a stopped workspace: 409 WORKSPACE_STOPPED, nothing recorded; ?wake=true starts it", async () => {
    // Prepare
    const ws = await createOnline();
    expect((await t.admin("POST", `/workspaces/${ws.id}/stop`)).status).toBe(202);
    await sweepUntil(ws.id, "stopped");

    // Act
    const refused = await errorOf(
      await t.admin("POST", `/workspaces/${ws.id}/commands`, { argv: ["true"] }),
    );
    const woken = await t.admin("POST", `/workspaces/${ws.id}/commands?wake=true`, {
      argv: ["true"],
    });
    const body = (await woken.json()) as { status: string; next: string };
    const audit = (await (await t.admin("GET", `/workspaces/${ws.id}/commands`)).json()) as {
      commands: unknown[];
    };

    // Assess
    expect(refused[0]).toBe(409);
    expect(refused[1].code).toBe("WORKSPACE_STOPPED");
    expect(woken.status).toBe(202);
    expect(body).toMatchObject({ status: "waking" });
    expect(body.next).toContain("repeat the command");
    expect(audit.commands).toEqual([]);
    expect((await sweepUntil(ws.id, "online")).status).toBe("online");
  });

  it("a command or plugin operation in flight is work: idle auto-stop spares its workspace", async () => {
    // Prepare: three idle-looking workspaces, one running a long command sent long ago, one
    // with a plugin install still in flight.
    const [working, idle, installing] = await Promise.all([
      createOnline({ idleStopSeconds: 60 }),
      createOnline({ idleStopSeconds: 60 }),
      createOnline({ idleStopSeconds: 60 }),
    ]);
    await t.opened.db.execute(
      sql`insert into workspace_plugins (workspace_id, name, version, source, digest, state)
          values (${installing.id}, 'code-review', '1.2.0', 'local://code-review', 'sha256:x', 'installing')`,
    );
    const sent = await t.admin("POST", `/workspaces/${working.id}/commands`, {
      argv: ["sleep", "30"],
      waitSeconds: 0,
    });
    expect(sent.status).toBe(202);
    await t.opened.db.execute(
      sql`update workspaces set updated_at = now() - interval '10 minutes', last_activity_at = now() - interval '10 minutes'`,
    );

    // Act
    const summary = await sweep(["idle"]);

    // Assess
    expect(summary.passes.idle.checked).toBe(1);
    expect((await rowOf(idle.id))?.status).toBe("stopping");
    expect((await rowOf(working.id))?.status).toBe("online");
    expect((await rowOf(installing.id))?.status).toBe("online");
    await t.admin(
      "POST",
      `/workspaces/${working.id}/commands/${((await sent.json()) as { commandId: string }).commandId}/cancel`,
    );
  });

  it("Content-Type: application/json with no body is a request without one (curl -H on a POST)", async () => {
    // Prepare
    const ws = await createOnline();
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };

    // Act
    const stop = await t.app.request(`/workspaces/${ws.id}/stop`, { method: "POST", headers });
    const again = await t.app.request(`/workspaces/${ws.id}/stop`, {
      method: "POST",
      headers,
      body: "",
    });
    const create = await t.app.request("/workspaces", { method: "POST", headers, body: "" });

    // Assess
    expect(stop.status).toBe(202);
    expect((await workspaceOf(stop)).hibernated).toBe(false);
    expect(again.status).toBe(202);
    expect(create.status).toBe(400);
    expect((await errorOf(create))[1].code).toBe("VALIDATION_FAILED");
  });
});
