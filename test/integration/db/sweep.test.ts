import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAwsClients } from "../../../lib/compute/clients.js";
import { workspaceEvents, workspaces } from "../../../lib/db/schema.js";
import { type LocalCloud, startLocalCloud } from "../../../lib/localcloud/index.js";
import { type PassName, runSweep, type SweepSummary } from "../../../lib/sweep/run.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { launchInstances } from "../../support/fleet.js";

let cloud: LocalCloud;
let dir: string;
let t: TestContext;

const budget = { remainingMs: () => 60_000 };
const sweep = (passes: PassName[], runId?: string): Promise<SweepSummary> =>
  runSweep(t.deps, { budget, passes, ...(runId && { runId }) });

async function control(path: string, init: { method?: string; body?: unknown } = {}) {
  const res = await fetch(`${cloud.url}/_localcloud${path}`, {
    method: init.method ?? "GET",
    ...(init.body !== undefined && {
      body: JSON.stringify(init.body),
      headers: { "content-type": "application/json" },
    }),
  });
  return res.json() as Promise<Record<string, unknown>>;
}
const describeCalls = async () =>
  ((await control("/stats")).calls as Record<string, number>)["ec2:DescribeInstances"] ?? 0;

/** `n` instances tagged as this product tags them (optionally with a workspace id). */
const launch = (n: number, deployment = "local", workspaceId?: string) =>
  launchInstances(t.deps.aws.ec2, n, [
    { Key: "wcp:managed", Value: "true" },
    { Key: "wcp:deployment", Value: deployment },
    ...(workspaceId ? [{ Key: "wcp:workspace-id", Value: workspaceId }] : []),
  ]);

/** Online instance-backed rows, one per instance, inserted in one statement. */
async function seedOnline(instanceIds: string[]): Promise<string[]> {
  if (instanceIds.length === 0) return [];
  const rows = await t.opened.db
    .insert(workspaces)
    .values(
      instanceIds.map((instanceId, i) => ({
        name: `ws-${i}`,
        runtime: "langgraph",
        status: "online" as const,
        instanceId,
        generation: 1,
        launchedAt: new Date(Date.now() - 3_600_000),
      })),
    )
    .returning({ id: workspaces.id });
  return rows.map((r) => r.id);
}

const statusOf = async (id: string) =>
  (await t.opened.db.select().from(workspaces).where(eq(workspaces.id, id)))[0]?.status;
const offlineIds = async () =>
  (await t.opened.db.select().from(workspaces).where(eq(workspaces.status, "offline"))).map(
    (r) => r.id,
  );

const waitFor = async (what: () => Promise<boolean>, ms = 5_000) => {
  const until = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > until) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 25));
  }
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "wcp-sweep-"));
  cloud = await startLocalCloud({
    port: 0,
    dir,
    credentials: { t: "t" },
    bootDelayMs: 20,
    ssmOnlineDelayMs: 20,
    terminateDelayMs: 20,
  });
  // One attempt per call: every injected fault reaches the running check unretried.
  const aws = createAwsClients({
    region: "us-east-1",
    endpoint: cloud.url,
    credentials: { accessKeyId: "t", secretAccessKey: "t" },
    maxAttempts: 1,
    requestTimeoutMs: 2_000,
  });
  t = await createTestContext({
    aws,
    env: {
      LAUNCH_GRACE_SECONDS: "1",
      REMOTE_STALE_AFTER_SECONDS: "60",
      PROVISION_TIMEOUT_SECONDS: "60",
    },
  });
});
afterAll(async () => {
  await t?.close();
  await cloud?.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  await t.reset();
  await control("/faults", { method: "DELETE" });
  // Terminate what earlier tests launched so listings start clean.
  const { instances } = (await control("/instances")) as {
    instances: { id: string; state: string }[];
  };
  const live = instances.filter((i) => i.state !== "terminated").map((i) => i.id);
  if (live.length > 0) {
    const { TerminateInstancesCommand } = await import("@aws-sdk/client-ec2");
    for (let i = 0; i < live.length; i += 100) {
      await t.deps.aws.ec2.send(
        new TerminateInstancesCommand({ InstanceIds: live.slice(i, i + 100) }),
      );
    }
  }
  await control("/stats/reset", { method: "POST" });
});

describe(`sweep over ${dbKind()}`, () => {
  it("liveness: crash 3 of 50 instances → exactly those 3 offline, one event each", async () => {
    // Prepare
    const instanceIds = await launch(50);
    const ids = await seedOnline(instanceIds);
    const crashed = [3, 17, 42].map((i) => ({ id: ids[i] ?? "", instance: instanceIds[i] ?? "" }));
    for (const c of crashed) await control(`/instances/${c.instance}/crash`, { method: "POST" });

    // Act
    const summary = await sweep(["liveness"]);

    // Assess
    expect(summary.passes.liveness).toMatchObject({ checked: 50, changed: 3, transient: 0 });
    expect((await offlineIds()).sort()).toEqual(crashed.map((c) => c.id).sort());
    const events = await t.opened.db.select().from(workspaceEvents);
    expect(events).toHaveLength(3);
    expect(
      events.every(
        (e) => e.from === "online" && e.to === "offline" && e.actor === "sweep:liveness",
      ),
    ).toBe(true);
    expect(await describeCalls()).toBe(1);
  });

  it("50% DescribeInstances faults of several kinds over 100 sweeps → zero false offline", async () => {
    // Prepare
    const instanceIds = await launch(40);
    const ids = await seedOnline(instanceIds);
    const crashedIdx = [5, 25];
    for (const i of crashedIdx)
      await control(`/instances/${instanceIds[i]}/crash`, { method: "POST" });
    // Four independent kinds at 16% each: 1 - 0.84^4 ≈ 50% of calls fail.
    for (const fault of [
      { error: "RequestLimitExceeded", httpStatus: 503 },
      { error: "InternalError", httpStatus: 500 },
      { error: "UnauthorizedOperation", httpStatus: 403 },
      { error: "", malformed: true },
    ]) {
      await control("/faults", {
        method: "POST",
        body: { service: "ec2", action: "DescribeInstances", probability: 0.16, ...fault },
      });
    }

    // Act: 100 sweeps; after each, nothing but a crashed workspace may be offline.
    let degradedRuns = 0;
    let transientTotal = 0;
    const crashed = new Set(crashedIdx.map((i) => ids[i]));
    for (let run = 0; run < 100; run++) {
      const summary = await sweep(["liveness"]);
      transientTotal += summary.passes.liveness.transient;
      if (summary.degraded) degradedRuns++;
      for (const id of await offlineIds()) expect(crashed.has(id)).toBe(true);
    }

    // Assess: faults happened (and were reported degraded), yet no healthy row went offline.
    expect(transientTotal).toBeGreaterThan(0);
    expect(degradedRuns).toBeGreaterThan(20);
    await control("/faults", { method: "DELETE" });
    await sweep(["liveness"]);
    expect((await offlineIds()).sort()).toEqual([...crashed].sort());
    const online = await t.opened.db
      .select()
      .from(workspaces)
      .where(eq(workspaces.status, "online"));
    expect(online).toHaveLength(38);
  });

  it("two sweeps at the same moment make every transition once", async () => {
    const instanceIds = await launch(10);
    const ids = await seedOnline(instanceIds);
    for (const i of [1, 2, 3])
      await control(`/instances/${instanceIds[i]}/crash`, { method: "POST" });
    const [a, b] = await Promise.all([sweep(["liveness"], "run-a"), sweep(["liveness"], "run-b")]);
    expect((a?.passes.liveness.changed ?? 0) + (b?.passes.liveness.changed ?? 0)).toBe(3);
    const events = await t.opened.db.select().from(workspaceEvents);
    expect(events).toHaveLength(3);
    expect(new Set(events.map((e) => e.workspaceId))).toEqual(new Set([ids[1], ids[2], ids[3]]));
  });

  it("a held lease makes a concurrent run skip the pass", async () => {
    await t.opened.db.execute(
      sql`insert into sweep_leases (name, holder, expires_at) values ('sweep:liveness', 'other', now() + interval '1 minute')`,
    );
    const summary = await sweep(["liveness"]);
    expect(summary.passes.liveness.skipped).toBe("leased");
    await t.opened.db.execute(
      sql`update sweep_leases set expires_at = now() - interval '1 second'`,
    );
    expect((await sweep(["liveness"])).passes.liveness.skipped).toBeUndefined();
  });

  it("external staleness: offline past the window (database clock), online on the next heartbeat", async () => {
    const res = await t.admin("POST", "/workspaces", { name: "ext", runtime: "external" });
    const { workspace, token } = (await res.json()) as { workspace: { id: string }; token: string };
    await t.as(token, "POST", "/registry/register");
    expect((await sweep(["external"])).passes.external.changed).toBe(0);
    // Age the heartbeat past REMOTE_STALE_AFTER_SECONDS (60) on the database clock.
    await t.opened.db.execute(
      sql`update workspaces set last_heartbeat_at = now() - interval '61 seconds' where id = ${workspace.id}`,
    );
    expect((await sweep(["external"])).passes.external.changed).toBe(1);
    expect(await statusOf(workspace.id)).toBe("offline");
    const hb = await t.as(token, "POST", "/registry/heartbeat");
    expect(await hb.json()).toEqual({ status: "online" });
    const events = await t.opened.db
      .select()
      .from(workspaceEvents)
      .where(eq(workspaceEvents.workspaceId, workspace.id))
      .orderBy(workspaceEvents.seq);
    expect(events.map((e) => `${e.to}:${e.actor}`)).toEqual([
      "awaiting_agent:api",
      "online:agent",
      "offline:sweep:external",
      "online:agent",
    ]);
  });

  it("provision timeout: provisioning and awaiting_agent past the timeout → failed", async () => {
    const ext = (await (
      await t.admin("POST", "/workspaces", { name: "late", runtime: "external" })
    ).json()) as {
      workspace: { id: string };
    };
    const fresh = (await (
      await t.admin("POST", "/workspaces", { name: "fresh", runtime: "external" })
    ).json()) as {
      workspace: { id: string };
    };
    await t.opened.db.execute(
      sql`update workspaces set updated_at = now() - interval '61 seconds' where id = ${ext.workspace.id}`,
    );
    const summary = await sweep(["provision-timeout"]);
    expect(summary.passes["provision-timeout"].changed).toBe(1);
    expect(await statusOf(ext.workspace.id)).toBe("failed");
    expect(await statusOf(fresh.workspace.id)).toBe("awaiting_agent");
  });

  it("removal: removing → removed with the instance terminated", async () => {
    const [instanceId] = await launch(1);
    const [id] = await seedOnline([instanceId ?? ""]);
    await t.opened.db
      .update(workspaces)
      .set({ status: "removing" })
      .where(eq(workspaces.id, id ?? ""));
    const summary = await sweep(["removal"]);
    expect(summary.passes.removal.changed).toBe(1);
    expect(await statusOf(id ?? "")).toBe("removed");
    const inst = (await control(`/instances`)) as { instances: { id: string; state: string }[] };
    expect(inst.instances.find((i) => i.id === instanceId)?.state).toMatch(
      /shutting-down|terminated/,
    );
  });

  it("orphans: terminates this deployment's unowned instances past the grace, nothing else", async () => {
    // Prepare: an owned instance, an orphan with no row, one whose row moved on, another deployment's.
    const ownedWs = (await seedOnline(["i-00000000000000001"]))[0] ?? "";
    const [owned] = await launch(1, "local", ownedWs);
    await t.opened.db
      .update(workspaces)
      .set({ instanceId: owned ?? "" })
      .where(eq(workspaces.id, ownedWs));
    const [orphan] = await launch(1);
    const movedOnWs = (await seedOnline(["i-00000000000000000"]))[0] ?? "";
    const [movedOn] = await launch(1, "local", movedOnWs);
    const [foreign] = await launch(1, "other-deployment");
    await new Promise((r) => setTimeout(r, 1_100)); // past LAUNCH_GRACE_SECONDS=1

    // Act
    const summary = await sweep(["orphans"]);

    // Assess
    expect(summary.passes.orphans.changed).toBe(2);
    const states = new Map(
      (
        (await control("/instances")) as { instances: { id: string; state: string }[] }
      ).instances.map((i) => [i.id, i.state]),
    );
    expect(states.get(owned ?? "")).toBe("running");
    expect(states.get(foreign ?? "")).toBe("running");
    expect(states.get(orphan ?? "")).toMatch(/shutting-down|terminated/);
    expect(states.get(movedOn ?? "")).toMatch(/shutting-down|terminated/);
  });

  it("orphans: a fresh instance inside the launch grace is left alone", async () => {
    const [orphan] = await launch(1);
    const summary = await sweep(["orphans"]);
    expect(summary.passes.orphans.changed).toBe(0);
    const inst = (await control("/instances")) as { instances: { id: string; state: string }[] };
    expect(inst.instances.find((i) => i.id === orphan)?.state).toMatch(/^(pending|running)$/);
  });

  it("launch and readiness: a pending launch is re-driven, then the workspace comes online", async () => {
    // Prepare: a provisioning row with no instance, as after a transient RunInstances failure.
    const [row] = await t.opened.db
      .insert(workspaces)
      .values({ name: "redrive", runtime: "langgraph", status: "provisioning", generation: 1 })
      .returning();
    await t.opened.db.execute(
      sql`update workspaces set updated_at = now() - interval '31 seconds' where id = ${row?.id ?? ""}`,
    );

    // Act
    const first = await sweep(["launch"]);
    const again = await sweep(["launch"]);

    // Assess: one launch, one instance (same ClientToken), then online once SSM says Online.
    expect(first.passes.launch.changed).toBe(1);
    expect(again.passes.launch.checked).toBe(0);
    const [launched] = await t.opened.db
      .select()
      .from(workspaces)
      .where(eq(workspaces.id, row?.id ?? ""));
    expect(launched?.instanceId).toMatch(/^i-/);
    await waitFor(async () => {
      await sweep(["readiness"]);
      return (await statusOf(row?.id ?? "")) === "online";
    });
  });

  it("costs ⌈N/200⌉ DescribeInstances calls: 1,000 rows → 5", async () => {
    const instanceIds = await launch(1000);
    await seedOnline(instanceIds);
    await control("/stats/reset", { method: "POST" });
    const summary = await sweep(["liveness"]);
    expect(summary.passes.liveness.checked).toBe(1000);
    expect(summary.passes.liveness.changed).toBe(0);
    expect(await describeCalls()).toBe(5);
  });

  it("stops taking batches when the budget runs short; the next run continues", async () => {
    const instanceIds = await launch(10);
    await seedOnline(instanceIds);
    for (const id of instanceIds) await control(`/instances/${id}/crash`, { method: "POST" });
    let calls = 0;
    // Time for exactly one page: 4 rows (batches of 1 id, 4 calls in parallel).
    const tight = { remainingMs: () => (calls++ < 3 ? 60_000 : 0) };
    const summary = await runSweep(t.deps, { budget: tight, passes: ["liveness"], batchSize: 1 });
    expect(summary.passes.liveness.checked).toBe(4);
    expect(await offlineIds()).toHaveLength(4);
    await runSweep(t.deps, { budget, passes: ["liveness"], batchSize: 1 });
    expect(await offlineIds()).toHaveLength(10);
  });
});
