import { asc, eq, inArray } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type WorkspaceRow, workspaceEvents, workspaces } from "../../../lib/db/schema.js";
import type { Clock } from "../../../lib/deps.js";
import { runSweep } from "../../../lib/sweep/run.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { launchInstances } from "../../support/fleet.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// `degraded`: EC2 says running, but SSM has not seen the instance's agent Online for longer than
// DEGRADED_AFTER_SECONDS — commands cannot reach it. The sweep's liveness pass sets it and clears
// it, in batches, with events. Time moves through an injected clock, never by waiting.

let c: ComputeCloud;
let t: TestContext;
/** Added to the wall clock by the sweep's clock; the local cloud keeps real time. */
let skewMs = 0;
const clock: Clock = { now: () => new Date(Date.now() + skewMs) };

const DEGRADED_AFTER = 60;
const budget = { remainingMs: () => 60_000 };
const liveness = async () =>
  (await runSweep(t.deps, { budget, passes: ["liveness"] })).passes.liveness;

beforeAll(async () => {
  c = await startComputeCloud();
  t = await createTestContext({
    aws: c.clients({ maxAttempts: 1, requestTimeoutMs: 2_000 }),
    env: { DEGRADED_AFTER_SECONDS: String(DEGRADED_AFTER) },
  });
  t.deps.clock = clock;
});

afterAll(async () => {
  await t?.close();
  await c?.close();
});

beforeEach(async () => {
  await t.reset();
  skewMs = 0;
});

afterEach(async () => {
  await c.clearFaults();
});

/** `n` running instances whose agents SSM lists Online, each the instance of an online row. */
async function onlineWorkspaces(n: number): Promise<WorkspaceRow[]> {
  const ids = await launchInstances(t.deps.aws.ec2, n);
  await waitFor(async () => {
    const all = await c.instances();
    const mine = all.filter((i) => ids.includes(i.id));
    return mine.every((i) => i.ssmPingStatus === "Online") ? true : undefined;
  });
  return t.opened.db
    .insert(workspaces)
    .values(
      ids.map((instanceId, i) => ({
        name: `ws-${i}`,
        runtime: "langgraph",
        status: "online" as const,
        instanceId,
        generation: 1,
        launchedAt: new Date(Date.now() - 3_600_000),
      })),
    )
    .returning();
}

const rowOf = async (id: string) =>
  (await t.opened.db.select().from(workspaces).where(eq(workspaces.id, id)))[0];

const eventsOf = async (ids: string[]) =>
  t.opened.db
    .select()
    .from(workspaceEvents)
    .where(inArray(workspaceEvents.workspaceId, ids))
    .orderBy(asc(workspaceEvents.seq));

describe(`degraded over ${dbKind()}`, () => {
  it("an agent SSM has lost for longer than the setting → degraded, and online once it is back", async () => {
    // Prepare
    const rows = await onlineWorkspaces(3);
    const [lost, ...healthy] = rows;
    if (!lost) throw new Error("no rows");
    await c.setAgentOnline(lost.instanceId ?? "", false);

    // Act 1: SSM says ConnectionLost, but not for long enough yet.
    const early = await liveness();

    // Assess 1: nothing changes.
    expect(early).toMatchObject({ checked: 3, changed: 0, transient: 0 });
    expect((await rowOf(lost.id))?.status).toBe("online");

    // Act 2: past DEGRADED_AFTER_SECONDS since its last ping.
    skewMs = (DEGRADED_AFTER + 1) * 1000;
    await c.resetStats();
    const late = await liveness();

    // Assess 2: only that workspace is degraded, with an event and a lastError that says why;
    // one DescribeInstances and one DescribeInstanceInformation for the batch.
    expect(late).toMatchObject({ checked: 3, changed: 1, transient: 0 });
    const degraded = await rowOf(lost.id);
    expect(degraded?.status).toBe("degraded");
    expect(degraded?.lastError).toMatch(/SSM agent has not been Online for over 60s/);
    for (const h of healthy) expect((await rowOf(h.id))?.status).toBe("online");
    expect(await c.calls("ssm:DescribeInstanceInformation")).toBe(1);
    expect(await c.calls("ec2:DescribeInstances")).toBe(1);
    expect((await liveness()).changed).toBe(0);

    // Act 3: the agent reaches SSM again.
    await c.setAgentOnline(lost.instanceId ?? "", true);
    const back = await liveness();

    // Assess 3
    expect(back.changed).toBe(1);
    const recovered = await rowOf(lost.id);
    expect(recovered?.status).toBe("online");
    expect(recovered?.lastError).toBeNull();
    const events = await eventsOf(rows.map((r) => r.id));
    expect(events.map((e) => `${e.from}→${e.to}:${e.actor}`)).toEqual([
      "online→degraded:sweep:liveness",
      "degraded→online:sweep:liveness",
    ]);
  });

  it("a failing DescribeInstanceInformation changes nothing, either way", async () => {
    // Prepare: one degraded already (its agent lost long ago), one online whose agent is lost.
    const [wasDegraded, wasOnline] = await onlineWorkspaces(2);
    if (!wasDegraded || !wasOnline) throw new Error("no rows");
    await t.opened.db
      .update(workspaces)
      .set({ status: "degraded" })
      .where(eq(workspaces.id, wasDegraded.id));
    await c.setAgentOnline(wasOnline.instanceId ?? "", false);
    skewMs = (DEGRADED_AFTER + 1) * 1000;
    await c.fault({
      service: "ssm",
      action: "DescribeInstanceInformation",
      error: "InternalServerError",
      httpStatus: 500,
    });

    // Act
    const counts = await liveness();

    // Assess
    expect(counts).toMatchObject({ checked: 2, changed: 0, transient: 2 });
    expect((await rowOf(wasDegraded.id))?.status).toBe("degraded");
    expect((await rowOf(wasOnline.id))?.status).toBe("online");
    expect(await eventsOf([wasDegraded.id, wasOnline.id])).toEqual([]);
  });

  it("a degraded workspace whose instance stops goes offline", async () => {
    const [row] = await onlineWorkspaces(1);
    if (!row) throw new Error("no rows");
    await t.opened.db
      .update(workspaces)
      .set({ status: "degraded" })
      .where(eq(workspaces.id, row.id));
    await c.crash(row.instanceId ?? "");

    const counts = await liveness();

    expect(counts.changed).toBe(1);
    expect((await rowOf(row.id))?.status).toBe("offline");
  });

  it("costs ⌈running/100⌉ DescribeInstanceInformation filters (pages of 50) per batch: 150 rows → 3 calls", async () => {
    await onlineWorkspaces(150);
    await c.resetStats();

    const counts = await liveness();

    expect(counts).toMatchObject({ checked: 150, changed: 0, transient: 0 });
    expect(await c.calls("ssm:DescribeInstanceInformation")).toBe(3);
    expect(await c.calls("ec2:DescribeInstances")).toBe(1);
  });

  it("an agent registering over HTTP does not clear degraded: SSM still cannot reach it", async () => {
    // Prepare
    const [row] = await onlineWorkspaces(1);
    if (!row) throw new Error("no rows");
    await t.opened.db
      .update(workspaces)
      .set({ status: "degraded" })
      .where(eq(workspaces.id, row.id));
    const minted = await t.admin("POST", `/workspaces/${row.id}/tokens`);
    const { token } = (await minted.json()) as { token: string };

    // Act
    const res = await t.as(token, "POST", "/registry/register");

    // Assess
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "degraded" });
    expect((await rowOf(row.id))?.status).toBe("degraded");
  });
});
