import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { eq } from "drizzle-orm";
import fc from "fast-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAwsClients } from "../../../lib/compute/clients.js";
import { type WorkspaceStatus, workspaceEvents, workspaces } from "../../../lib/db/schema.js";
import { deadlineIn } from "../../../lib/deadline.js";
import { type EventOutcome, reconcileInstanceEvent } from "../../../lib/ec2events/reconcile.js";
import type { StateChangeEvent } from "../../../lib/localcloud/events.js";
import { defaultImageId, type LocalCloud, startLocalCloud } from "../../../lib/localcloud/index.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { waitFor } from "../../support/wait.js";
import { startReceiver } from "../../support/webhook-receiver.js";

// EC2 state-change events reach the product and act through the sweep's own rules: the running
// check decides, never the event. No test here runs the sweep.

let cloud: LocalCloud;
let dir: string;
let t: TestContext;
/** While false, the cloud's deliveries are kept in `held`, unhandled (tests that hand events in). */
let live = true;
const held: StateChangeEvent[] = [];
/** Deliveries being handled right now. */
let inflight = 0;
/** What the cloud's deliveries led to, with the state each event announced. */
const outcomes: (EventOutcome & { announced: string })[] = [];
const handled = (state: string) => outcomes.filter((o) => o.announced === state);

const reconcile = (event: unknown) =>
  reconcileInstanceEvent(t.deps, event, { deadline: deadlineIn(10_000) });

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

/** One instance of this deployment (or another), optionally under a ClientToken. */
async function launch(opts: { deployment?: string; clientToken?: string } = {}) {
  const out = await t.deps.aws.ec2.send(
    new RunInstancesCommand({
      ImageId: defaultImageId,
      InstanceType: "t3.small",
      MinCount: 1,
      MaxCount: 1,
      ...(opts.clientToken && { ClientToken: opts.clientToken }),
      TagSpecifications: [
        {
          ResourceType: "instance",
          Tags: [
            { Key: "wcp:managed", Value: "true" },
            { Key: "wcp:deployment", Value: opts.deployment ?? "local" },
          ],
        },
      ],
    }),
  );
  const id = out.Instances?.[0]?.InstanceId;
  if (!id) throw new Error("no instance");
  return id;
}

async function seed(status: WorkspaceStatus, instanceId: string | null, generation = 1) {
  const [row] = await t.opened.db
    .insert(workspaces)
    .values({
      name: "ws",
      runtime: "langgraph",
      status,
      instanceId,
      generation,
      launchedAt: instanceId ? new Date(Date.now() - 3_600_000) : null,
    })
    .returning();
  if (!row) throw new Error("no row");
  return row;
}

const rowOf = async (id: string) =>
  (await t.opened.db.select().from(workspaces).where(eq(workspaces.id, id)))[0];
const eventsOf = (id: string) =>
  t.opened.db.select().from(workspaceEvents).where(eq(workspaceEvents.workspaceId, id));
const waitForStatus = (id: string, status: WorkspaceStatus) =>
  waitFor(async () => ((await rowOf(id))?.status === status ? true : undefined), 5_000);
const instanceState = async (id: string) => {
  const view = (await control(`/instances/${id}`)) as { state?: string };
  return view.state;
};

/** An event as EventBridge hands it over, for the tests that deliver by hand. */
const eventFor = (instanceId: string, state: string) => ({
  version: "0",
  id: crypto.randomUUID(),
  "detail-type": "EC2 Instance State-change Notification",
  source: "aws.ec2",
  account: "123456789012",
  time: new Date().toISOString(),
  region: "us-east-1",
  resources: [`arn:aws:ec2:us-east-1:123456789012:instance/${instanceId}`],
  detail: { "instance-id": instanceId, state },
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "wcp-ec2ev-"));
  cloud = await startLocalCloud({
    port: 0,
    dir,
    credentials: { t: "t" },
    bootDelayMs: 20,
    ssmOnlineDelayMs: 20,
    terminateDelayMs: 20,
    stopDelayMs: 20,
    eventDelayMs: 5,
    eventJitterMs: 0,
    eventRetryBaseMs: 20,
    eventTargets: [
      async (event: StateChangeEvent) => {
        if (!live) {
          held.push(event);
          return;
        }
        inflight++;
        try {
          outcomes.push({ ...(await reconcile(event)), announced: event.detail.state });
        } finally {
          inflight--;
        }
      },
    ],
  });
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
      DEGRADED_AFTER_SECONDS: "300",
      WEBHOOK_ALLOW_PRIVATE: "true",
    },
  });
});
afterAll(async () => {
  await t?.close();
  await cloud?.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  live = true;
  outcomes.length = 0;
  held.length = 0;
  await t.reset();
  await control("/faults", { method: "DELETE" });
  await control("/stats/reset", { method: "POST" });
});

describe(`EC2 state-change events over ${dbKind()}`, () => {
  it("a crashed instance's workspace goes offline through the event path alone", async () => {
    // Prepare
    const instanceId = await launch();
    await waitFor(async () => ((await instanceState(instanceId)) === "running" ? true : undefined));
    const ws = await seed("online", instanceId);

    // Act
    await control(`/instances/${instanceId}/crash`, { method: "POST" });

    // Assess
    await waitForStatus(ws.id, "offline");
    expect((await eventsOf(ws.id)).map((e) => [e.from, e.to, e.actor])).toEqual([
      ["online", "offline", "ec2-event:liveness"],
    ]);
  });

  it("a crash's workspace.status_changed webhook is delivered by the event path, no sweep", async () => {
    // Prepare: a subscriber on loopback.
    const rx = await startReceiver();
    try {
      const sub = await t.admin("POST", "/webhooks", {
        url: rx.url,
        events: ["workspace.status_changed"],
      });
      expect(sub.status).toBe(201);
      const instanceId = await launch();
      await waitFor(async () =>
        (await instanceState(instanceId)) === "running" ? true : undefined,
      );
      const ws = await seed("online", instanceId);

      // Act
      await control(`/instances/${instanceId}/crash`, { method: "POST" });

      // Assess
      const got = await waitFor(() => rx.received.find((r) => r.body.includes('"offline"')));
      expect(JSON.parse(got.body)).toMatchObject({
        type: "workspace.status_changed",
        data: { workspaceId: ws.id, from: "online", to: "offline" },
      });
    } finally {
      await rx.close();
    }
  });

  it("duplicates of the crash make one transition and one event", async () => {
    // Prepare
    const instanceId = await launch();
    await waitFor(async () => ((await instanceState(instanceId)) === "running" ? true : undefined));
    const ws = await seed("online", instanceId);
    await control("/faults", {
      method: "POST",
      body: { service: "events", action: "stopped", duplicate: 3 },
    });

    // Act
    await control(`/instances/${instanceId}/crash`, { method: "POST" });

    // Assess: all four copies handled, one change.
    await waitFor(() =>
      handled("stopped").filter((o) => o.kind === "reconciled").length >= 4 ? true : undefined,
    );
    expect((await rowOf(ws.id))?.status).toBe("offline");
    expect(await eventsOf(ws.id)).toHaveLength(1);
  });

  it("a stopped event arriving after the instance runs again changes nothing", async () => {
    // Prepare: the crash's own event, held back until the instance was started and runs again.
    const instanceId = await launch();
    await waitFor(async () => ((await instanceState(instanceId)) === "running" ? true : undefined));
    const ws = await seed("online", instanceId);
    live = false;
    // A launch event still being handled would run its check after the crash, and rightly
    // mark the row offline: only the held-back event may act here.
    await waitFor(() => (inflight === 0 ? true : undefined));
    await control(`/instances/${instanceId}/crash`, { method: "POST" });
    const stopped = await waitFor(() => held.find((e) => e.detail.state === "stopped"));
    await t.deps.aws.ec2.send(new StartInstancesCommand({ InstanceIds: [instanceId] }));
    await waitFor(async () => ((await instanceState(instanceId)) === "running" ? true : undefined));

    // Act
    const late = await reconcile(stopped);

    // Assess
    expect(late).toMatchObject({ kind: "reconciled", counts: { changed: 0 } });
    expect((await rowOf(ws.id))?.status).toBe("online");
    expect(await eventsOf(ws.id)).toEqual([]);
  });

  it("an old terminated event after a relaunch with a new instance changes nothing", async () => {
    // Prepare: generation 1 ran on `old`; the restart launched `next` under generation 2.
    live = false;
    const ws = await seed("online", null, 2);
    const old = await launch({ clientToken: `${ws.id}:1` });
    const next = await launch({ clientToken: `${ws.id}:2` });
    await t.opened.db.update(workspaces).set({ instanceId: next }).where(eq(workspaces.id, ws.id));
    await t.deps.aws.ec2.send(new TerminateInstancesCommand({ InstanceIds: [old] }));
    await waitFor(async () => ((await instanceState(old)) === "terminated" ? true : undefined));

    // Act
    const late = await reconcile(eventFor(old, "terminated"));

    // Assess
    expect(late).toEqual({ kind: "not-ours", instanceId: old });
    expect(await rowOf(ws.id)).toMatchObject({ status: "online", instanceId: next });

    // And while the relaunch's answer is still missing, the old instance is not adopted.
    await t.opened.db
      .update(workspaces)
      .set({ status: "provisioning", instanceId: null })
      .where(eq(workspaces.id, ws.id));
    expect(await reconcile(eventFor(old, "terminated"))).toEqual({
      kind: "not-ours",
      instanceId: old,
    });
    expect(await rowOf(ws.id)).toMatchObject({ status: "provisioning", instanceId: null });
  });

  it("a lost launch answer is adopted by its ClientToken, and readiness follows", async () => {
    // Prepare: the instance runs and its agent is Online; the row never heard of it.
    live = false;
    const ws = await seed("provisioning", null, 1);
    const instanceId = await launch({ clientToken: `${ws.id}:1` });
    await waitFor(async () => {
      const view = (await control(`/instances/${instanceId}`)) as { ssmPingStatus?: string };
      return view.ssmPingStatus === "Online" ? true : undefined;
    });

    // Act
    const outcome = await reconcile(eventFor(instanceId, "running"));

    // Assess
    expect(outcome).toMatchObject({ kind: "reconciled", workspaceIds: [ws.id] });
    expect(await rowOf(ws.id)).toMatchObject({ status: "online", instanceId });
    expect((await eventsOf(ws.id)).map((e) => [e.to, e.actor])).toEqual([
      ["provisioning", "ec2-event:launch"],
      ["online", "ec2-event:readiness"],
    ]);
  });

  it("an event while the running check answers transient changes nothing", async () => {
    // Prepare
    live = false;
    const instanceId = await launch();
    await waitFor(async () => ((await instanceState(instanceId)) === "running" ? true : undefined));
    const ws = await seed("online", instanceId);
    await control(`/instances/${instanceId}/crash`, { method: "POST" });
    await control("/faults", {
      method: "POST",
      body: { service: "ec2", action: "DescribeInstances", error: "InternalError" },
    });

    // Act
    const outcome = await reconcile(eventFor(instanceId, "stopped"));

    // Assess
    expect(outcome).toMatchObject({ kind: "reconciled", counts: { changed: 0, transient: 1 } });
    expect((await rowOf(ws.id))?.status).toBe("online");

    // The same event once EC2 answers again: the check, not the event, took it offline.
    await control("/faults", { method: "DELETE" });
    await reconcile(eventFor(instanceId, "stopped"));
    expect((await rowOf(ws.id))?.status).toBe("offline");
  });

  it("a stopping workspace is stopped when its instance's stopped event arrives", async () => {
    // Prepare
    const instanceId = await launch();
    await waitFor(async () => ((await instanceState(instanceId)) === "running" ? true : undefined));
    const ws = await seed("stopping", instanceId);

    // Act
    await t.deps.aws.ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));

    // Assess
    await waitForStatus(ws.id, "stopped");
    expect((await eventsOf(ws.id)).map((e) => e.actor)).toEqual(["ec2-event:power"]);
  });

  it("ignores instances no workspace owns, and malformed events, before any AWS call", async () => {
    // Prepare
    live = false;
    const foreign = await launch({ deployment: "someone-else" });
    await seed("online", await launch());
    await control("/stats/reset", { method: "POST" });

    // Act
    const unknown = await reconcile(eventFor(foreign, "stopped"));
    const malformed = await Promise.all([
      reconcile({ source: "aws.ec2", detail: {} }),
      reconcile(eventFor("i-not-an-id", "stopped")),
      reconcile({ ...eventFor(foreign, "stopped"), source: "my.app" }),
      reconcile(null),
    ]);

    // Assess
    expect(unknown).toEqual({ kind: "not-ours", instanceId: foreign });
    expect(malformed.map((o) => o.kind)).toEqual([
      "malformed",
      "malformed",
      "malformed",
      "malformed",
    ]);
    expect(await describeCalls()).toBe(0);
  });
});

describe(`EC2 events under random duplicates and reordering, over ${dbKind()}`, () => {
  /** Every delivery made and handled. */
  const settled = () =>
    waitFor(async () => {
      const stats = (await control("/events/stats")) as { pending: number };
      return stats.pending === 0 && inflight === 0 ? true : undefined;
    }, 10_000);

  it("never makes a wrong transition: only online → offline, at most once, and offline whenever the instance ends stopped", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          // Crashes and starts alternate; how many, and the pauses between them.
          steps: fc.integer({ min: 1, max: 4 }),
          pauses: fc.array(fc.integer({ min: 0, max: 80 }), { minLength: 4, maxLength: 4 }),
          duplicate: fc.integer({ min: 0, max: 2 }),
          stoppedLatencyMs: fc.integer({ min: 0, max: 250 }),
          runningLatencyMs: fc.integer({ min: 0, max: 250 }),
        }),
        async ({ steps, pauses, duplicate, stoppedLatencyMs, runningLatencyMs }) => {
          // Prepare
          await control("/faults", { method: "DELETE" });
          const instanceId = await launch();
          await waitFor(async () =>
            (await instanceState(instanceId)) === "running" ? true : undefined,
          );
          const ws = await seed("online", instanceId);
          for (const [action, latencyMs] of [
            ["stopped", stoppedLatencyMs],
            ["running", runningLatencyMs],
          ] as const) {
            await control("/faults", {
              method: "POST",
              body: {
                service: "events",
                action,
                latencyMs,
                ...(duplicate > 0 && { duplicate }),
              },
            });
          }

          // Act: crash, start, crash, … — each event may come late, twice, out of order.
          for (let i = 0; i < steps; i++) {
            if (i % 2 === 0) {
              await control(`/instances/${instanceId}/crash`, { method: "POST" });
            } else {
              await t.deps.aws.ec2.send(new StartInstancesCommand({ InstanceIds: [instanceId] }));
            }
            await new Promise((r) => setTimeout(r, pauses[i] ?? 0));
          }
          // A start's running state comes after the boot delay; its events after that.
          await waitFor(async () => {
            const state = await instanceState(instanceId);
            return state === "running" || state === "stopped" ? state : undefined;
          });
          await new Promise((r) => setTimeout(r, 50));
          await settled();

          // Assess
          const history = (await eventsOf(ws.id)).map((e) => [e.from, e.to]);
          expect(history.length).toBeLessThanOrEqual(1);
          for (const step of history) expect(step).toEqual(["online", "offline"]);
          const ended = await instanceState(instanceId);
          const status = (await rowOf(ws.id))?.status;
          if (ended === "stopped") expect(status).toBe("offline");
          else expect(["online", "offline"]).toContain(status);
        },
      ),
      { numRuns: 12, seed: 16 },
    );
  });
});
