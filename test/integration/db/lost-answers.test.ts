import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { eq, sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { workspaceEvents, workspaces } from "../../../lib/db/schema.js";
import type { Deps, Log } from "../../../lib/deps.js";
import { listWorkspacePlugins } from "../../../lib/plugins/records.js";
import { type PassName, runSweep, type SweepSummary } from "../../../lib/sweep/run.js";
import { launchWorkspace } from "../../../lib/workspaces/launch.js";
import type { Workspace } from "../../../lib/workspaces/model.js";
import { restartWorkspace } from "../../../lib/workspaces/restart.js";
import { instanceToken } from "../../../lib/workspaces/tokens.js";
import {
  ADMIN_TOKEN,
  createTestContext,
  dbKind,
  type TestContext,
  testConfig,
} from "../../support/context.js";
import { launchInstances } from "../../support/fleet.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// Issue 11's defects, each as a scenario over the local cloud through the real SDK, on PGlite
// and PostgreSQL: answers lost between EC2/SSM and us (the call took effect, the client timed
// out), a stale re-drive, a setting changed under a pending launch, a missing IAM permission,
// and the guards that protect the races.

const GRACE_SECONDS = 1;
// The client gives up after 400 ms; a fault that holds every attempt's answer back 800 ms loses it
// while the call itself goes ahead, as a real service finishes a request its caller timed out on.
const CLIENT_TIMEOUT_MS = 400;
const LOST = { latencyMs: 800, times: 3 };

let c: ComputeCloud;
let t: TestContext;

beforeAll(async () => {
  c = await startComputeCloud();
  t = await createTestContext({
    env: {
      LAUNCH_GRACE_SECONDS: String(GRACE_SECONDS),
      PROVISION_TIMEOUT_SECONDS: "600",
      PLUGINS_DIR: resolve("plugins"),
    },
    aws: c.clients({ maxAttempts: 3, requestTimeoutMs: CLIENT_TIMEOUT_MS }),
  });
});
afterAll(async () => {
  await t?.close();
  await c?.close();
});
beforeEach(async () => {
  await t.reset();
  // Terminate what earlier tests launched: their rows are gone, so they would be orphans here.
  // (An instance EC2 does not list yet cannot be terminated; nor does the sweep see it.)
  const live = (await c.instances()).filter(
    (i) => (i.state === "pending" || i.state === "running") && i.describable !== false,
  );
  if (live.length > 0) {
    await t.deps.aws.ec2.send(
      new TerminateInstancesCommand({ InstanceIds: live.map((i) => i.id) }),
    );
  }
  await c.resetStats();
});
afterEach(async () => {
  await c.clearFaults();
});

/** Deps whose clock runs `aheadMs` ahead (the sweep's grace and settle times, without waiting). */
const later = (aheadMs: number, over: Partial<Deps> = {}): Deps => ({
  ...t.deps,
  clock: { now: () => new Date(Date.now() + aheadMs) },
  ...over,
});
const sweep = (passes: PassName[], deps: Deps = t.deps): Promise<SweepSummary> =>
  runSweep(deps, { budget: { remainingMs: () => 60_000 }, passes });

const rowOf = async (id: string) =>
  (await t.opened.db.select().from(workspaces).where(eq(workspaces.id, id)))[0];
const eventsOf = async (id: string) =>
  (await t.opened.db.select().from(workspaceEvents).where(eq(workspaceEvents.workspaceId, id)))
    .map((e) => `${e.from ?? "∅"}→${e.to}: ${e.reason}`)
    .sort();
const instancesOf = async (workspaceId: string) =>
  (await c.instances()).filter((i) => i.tags["wcp:workspace-id"] === workspaceId);
/** The launch pass picks up rows untouched for 30 s; this makes a row look that old. */
const age = (id: string, seconds = 60) =>
  t.opened.db.execute(
    sql`update workspaces set updated_at = now() - make_interval(secs => ${seconds}) where id = ${id}`,
  );

/** Creates an instance-backed workspace whose RunInstances answer is lost; waits for its instance. */
async function createWithLostAnswer(): Promise<{ id: string; instanceId: string }> {
  await c.fault({ service: "ec2", action: "RunInstances", ...LOST });
  const res = await t.admin("POST", "/workspaces", { name: "lost" });
  expect(res.status).toBe(201);
  const { workspace } = (await res.json()) as { workspace: Workspace };
  expect(workspace.instanceId).toBeNull();
  expect(workspace.lastError).toMatch(/TimeoutError/);
  const [instance] = await waitFor(async () => {
    const found = await instancesOf(workspace.id);
    return found.length > 0 ? found : undefined;
  });
  return { id: workspace.id, instanceId: instance?.id ?? "" };
}

const agentToken = (id: string, generation = 1) => instanceToken(ADMIN_TOKEN, id, generation).token;

describe(`lost answers and stale writers over ${dbKind()}`, () => {
  describe("1. a lost RunInstances answer never leaves a workspace online without its instance", () => {
    it("an agent registering first adopts the instance; the orphan pass keeps it", async () => {
      // Prepare
      const ws = await createWithLostAnswer();
      await waitFor(async () =>
        (await c.instance(ws.instanceId)).state === "running" ? 1 : undefined,
      );

      // Act: the agent on that instance registers before any sweep re-drives the launch.
      const res = await t.as(agentToken(ws.id), "POST", "/registry/register");
      const afterGrace = later((GRACE_SECONDS + 5) * 1000);
      const orphans = await sweep(["orphans"], afterGrace);

      // Assess
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "online" });
      expect(await rowOf(ws.id)).toMatchObject({ status: "online", instanceId: ws.instanceId });
      expect(orphans.passes.orphans.changed).toBe(0);
      expect((await c.instance(ws.instanceId)).state).toBe("running");
      expect(await eventsOf(ws.id)).toContain(
        `provisioning→provisioning: instance ${ws.instanceId} adopted by its ClientToken (its agent registered)`,
      );
    });

    it("a registration EC2 cannot confirm records the beat and stays provisioning", async () => {
      // Prepare
      const ws = await createWithLostAnswer();
      await c.fault({ service: "ec2", action: "DescribeInstances", error: "RequestLimitExceeded" });

      // Act
      const res = await t.as(agentToken(ws.id), "POST", "/registry/register");

      // Assess: not online without its instance; the beat is kept.
      expect(await res.json()).toEqual({ status: "provisioning" });
      const row = await rowOf(ws.id);
      expect(row).toMatchObject({ status: "provisioning", instanceId: null });
      expect(row?.lastHeartbeatAt).not.toBeNull();
    });

    it("a late agent after the provision timeout cannot bring a failed workspace online; its instance goes", async () => {
      // Prepare: provision timeout gives up on the workspace.
      const ws = await createWithLostAnswer();
      const quick = { ...t.deps, config: testConfig({ PROVISION_TIMEOUT_SECONDS: "1" }) };
      await age(ws.id);
      const timedOut = await sweep(["provision-timeout"], { ...quick, clock: t.deps.clock });

      // Act: the agent on the instance registers late.
      const res = await t.as(agentToken(ws.id), "POST", "/registry/register");
      const orphans = await sweep(["orphans"], later((GRACE_SECONDS + 5) * 1000));

      // Assess
      expect(timedOut.passes["provision-timeout"].changed).toBe(1);
      expect(res.status).toBe(401);
      const row = await rowOf(ws.id);
      expect(row).toMatchObject({ status: "failed", instanceId: null, generation: 2 });
      expect(orphans.passes.orphans.changed).toBe(1);
      expect(["shutting-down", "terminated"]).toContain((await c.instance(ws.instanceId)).state);
    });
  });

  describe("2. a transient launch never ends as a permanent failure", () => {
    it("the orphan pass keeps the instance of the current ClientToken; the launch pass adopts it", async () => {
      // Prepare: the answer is lost, and the re-drives are throttled past the launch grace.
      const ws = await createWithLostAnswer();
      await age(ws.id);
      await c.fault({ service: "ec2", action: "RunInstances", error: "RequestLimitExceeded" });
      await c.resetStats();
      const afterGrace = later((GRACE_SECONDS + 5) * 1000);

      // Act
      const orphans = await sweep(["orphans"], afterGrace);
      const launch = await sweep(["launch"], afterGrace);
      await c.clearFaults();
      const ready = await waitFor(async () => {
        const s = await sweep(["readiness"]);
        return s.passes.readiness.changed > 0 ? s : undefined;
      });

      // Assess
      expect(orphans.passes.orphans.changed).toBe(0);
      expect(launch.passes.launch.changed).toBe(1);
      expect(ready.passes.readiness.changed).toBe(1);
      expect(await rowOf(ws.id)).toMatchObject({
        status: "online",
        instanceId: ws.instanceId,
        generation: 1,
      });
      // Adopted by the ClientToken lookup: no RunInstances needed.
      expect(await c.calls("ec2:RunInstances")).toBe(0);
    });

    it("a token whose instance was terminated moves to a new generation, with an event saying why", async () => {
      // Prepare: someone terminates the lost answer's instance outside the product.
      const ws = await createWithLostAnswer();
      await t.deps.aws.ec2.send(new TerminateInstancesCommand({ InstanceIds: [ws.instanceId] }));
      await waitFor(async () =>
        (await c.instance(ws.instanceId)).state === "terminated" ? 1 : undefined,
      );
      await age(ws.id);

      // Act
      const launch = await sweep(["launch"]);

      // Assess
      expect(launch.passes.launch).toMatchObject({ changed: 1, errors: 0 });
      const row = await rowOf(ws.id);
      expect(row).toMatchObject({ status: "provisioning", generation: 2 });
      expect(row?.instanceId).toMatch(/^i-/);
      expect(row?.instanceId).not.toBe(ws.instanceId);
      expect((await c.instance(row?.instanceId ?? "")).clientToken).toBe(`${ws.id}:2`);
      expect(await eventsOf(ws.id)).toContain(
        `provisioning→provisioning: ClientToken ${ws.id}:1 cannot be reused (IdempotentInstanceTerminated); relaunching as generation 2`,
      );
      // The new instance's agent authenticates; the old one's does not.
      expect((await t.as(agentToken(ws.id, 2), "POST", "/registry/heartbeat")).status).toBe(200);
      expect((await t.as(agentToken(ws.id, 1), "POST", "/registry/heartbeat")).status).toBe(401);
    });
  });

  describe("3. a stale re-drive never writes over a newer generation", () => {
    it("a rejected or throttled re-drive of generation 1 leaves generation 2 alone", async () => {
      // Prepare: the sweep reads generation 1; a restart moves the row to generation 2, whose own
      // launch is throttled, so neither generation names an instance.
      const ws = await createWithLostAnswer();
      const stale = await rowOf(ws.id);
      await c.fault({
        service: "ec2",
        action: "RunInstances",
        error: "RequestLimitExceeded",
        times: 3,
      });
      expect((await t.admin("POST", `/workspaces/${ws.id}/restart`)).status).toBe(202);
      const fresh = await rowOf(ws.id);
      expect(fresh).toMatchObject({ generation: 2, instanceId: null });
      await c.fault({ service: "ec2", action: "RunInstances", error: "InvalidParameterValue" });

      // Act: the stale re-drive is refused by EC2, then another fails with a server error.
      const rejected = await launchWorkspace(
        t.deps,
        stale as NonNullable<typeof stale>,
        "sweep:launch",
      );
      await c.clearFaults();
      await c.fault({ service: "ec2", action: "RunInstances", error: "InternalError", times: 3 });
      const pending = await launchWorkspace(
        t.deps,
        stale as NonNullable<typeof stale>,
        "sweep:launch",
      );

      // Assess
      expect(rejected.kind).toBe("superseded");
      expect(pending.kind).toBe("superseded");
      const now = await rowOf(ws.id);
      expect(now).toMatchObject({ status: "provisioning", generation: 2, instanceId: null });
      expect(now?.lastError).toMatch(/RequestLimitExceeded/);
    });

    it("a launched result of generation 1 is not recorded on generation 2 (the generation guard)", async () => {
      // Prepare: generation 1's answer is lost; the restart's own launch fails transiently, so
      // generation 2 has no instance either.
      const ws = await createWithLostAnswer();
      const stale = await rowOf(ws.id);
      await c.fault({
        service: "ec2",
        action: "RunInstances",
        error: "RequestLimitExceeded",
        times: 3,
      });
      expect((await t.admin("POST", `/workspaces/${ws.id}/restart`)).status).toBe(202);
      await c.clearFaults();

      // Act: the stale re-drive gets generation 1's instance back (same ClientToken).
      const out = await launchWorkspace(t.deps, stale as NonNullable<typeof stale>, "sweep:launch");

      // Assess
      expect(out.kind).toBe("superseded");
      expect(await rowOf(ws.id)).toMatchObject({ generation: 2, instanceId: null });
    });
  });

  describe("4. SendCommand is never retried blindly, and the answer says what is known", () => {
    for (const [what, fault] of [
      ["once", { ...LOST, times: 1 }],
      ["on every call", { latencyMs: LOST.latencyMs }],
    ] as const) {
      it(`a send whose answer is lost ${what} runs once, answers 202, and the sweep finds it in SSM's history`, async () => {
        // Prepare: a running workspace.
        const res = await t.admin("POST", "/workspaces", { name: "plugged" });
        const { workspace } = (await res.json()) as { workspace: Workspace };
        await waitFor(async () => {
          const v = await c.instance(workspace.instanceId ?? "");
          return v.ssmPingStatus === "Online" ? v : undefined;
        });
        const dir = (await c.instance(workspace.instanceId ?? "")).dir;
        await c.resetStats();
        // The SDK's default strategy would retry a lost answer into a second run.
        await c.fault({ service: "ssm", action: "SendCommand", ...fault });

        // Act
        const install = await t.admin("POST", `/workspaces/${workspace.id}/plugins`, {
          source: "local://code-review",
        });
        const sends = await c.calls("ssm:SendCommand");
        const listed = await listWorkspacePlugins(t.opened.db, workspace.id);
        // The command did reach SSM (its answer only was lost): the program ran.
        await waitFor(
          async () =>
            (await readFile(join(dir, "configs/plugins/code-review/plugin.yaml"), "utf8").catch(
              () => undefined,
            )) ?? undefined,
        );
        // The sweep, once the send has settled: the command is found by its claim's marker in
        // SSM's history, then read.
        const settled = later(120_000);
        const found = await sweep(["plugins"], settled);
        const done = await waitFor(async () => {
          await sweep(["plugins"], settled);
          const [row] = await listWorkspacePlugins(t.opened.db, workspace.id);
          return row?.state === "installed" ? row : undefined;
        }, 10_000);

        // Assess
        expect(install.status).toBe(202);
        expect(await install.json()).toEqual({
          status: "installing",
          plugin: "code-review",
          commandId: null,
        });
        expect(sends).toBe(1);
        expect(listed.map((r) => [r.name, r.state])).toEqual([["code-review", "installing"]]);
        expect(found.passes.plugins.changed).toBe(1);
        expect(done).toMatchObject({ state: "installed", version: "1.2.0" });
        expect(done.commandId).toMatch(/^[0-9a-f-]{36}$/);
        // Nothing was sent again: the one command was found and read.
        expect(await c.calls("ssm:SendCommand")).toBe(1);
        const skill = await readFile(join(dir, "configs/skills/review/SKILL.md"), "utf8");
        expect(skill).toContain("name: review");
      });
    }

    it("a claim whose request died before sending is sent by the sweep", async () => {
      // Prepare: a claim on the current instance, no command, nothing in SSM's history.
      const res = await t.admin("POST", "/workspaces", { name: "orphan-claim" });
      const { workspace } = (await res.json()) as { workspace: Workspace };
      await waitFor(async () => {
        const v = await c.instance(workspace.instanceId ?? "");
        return v.ssmPingStatus === "Online" ? v : undefined;
      });
      expect(
        (
          await t.admin("POST", `/workspaces/${workspace.id}/plugins`, {
            source: "local://code-review",
          })
        ).status,
      ).toBe(200);
      await t.opened.db.execute(sql`
        update workspace_plugins set state = 'installing', op_id = gen_random_uuid(),
          command_id = null, previous = null where workspace_id = ${workspace.id}`);
      await c.resetStats();

      // Act
      const done = await waitFor(async () => {
        await sweep(["plugins"], later(120_000));
        const [row] = await listWorkspacePlugins(t.opened.db, workspace.id);
        return row?.state === "installed" ? row : undefined;
      }, 10_000);

      // Assess
      expect(done.commandId).not.toBeNull();
      expect(await c.calls("ssm:ListCommands")).toBeGreaterThanOrEqual(1);
      expect(await c.calls("ssm:SendCommand")).toBe(1);
    });
  });

  describe("5. a changed setting never wedges a pending launch", () => {
    for (const [what, env] of [
      ["PLATFORM_URL", { PLATFORM_URL: "https://elsewhere.example" }],
      ["ADMIN_TOKEN", { ADMIN_TOKEN: "a-rotated-admin-token-0123456789" }],
    ] as const) {
      it(`a ${what} changed after a lost answer adopts the instance that answer launched`, async () => {
        // Prepare
        const ws = await createWithLostAnswer();
        await age(ws.id);
        const changed: Deps = { ...t.deps, config: testConfig(env) };

        // Act: the re-drive sends other user-data under the same ClientToken.
        const launch = await sweep(["launch"], changed);
        const again = await sweep(["launch"], changed);

        // Assess
        expect(launch.passes.launch).toMatchObject({ changed: 1, errors: 0 });
        expect(again.passes.launch.checked).toBe(0);
        expect(await rowOf(ws.id)).toMatchObject({
          status: "provisioning",
          generation: 1,
          instanceId: ws.instanceId,
        });
        expect(await eventsOf(ws.id)).toContain(
          `provisioning→provisioning: instance ${ws.instanceId} adopted by its ClientToken (the launch's answer was lost)`,
        );
      });
    }

    it("a mismatch whose token holder EC2 cannot be asked about stays pending, nothing thrown", async () => {
      // Prepare: the lookup by token finds nothing (EC2 does not list it), so the mismatch
      // cannot be resolved by adoption.
      const ws = await createWithLostAnswer();
      const row = await rowOf(ws.id);
      const changed: Deps = {
        ...t.deps,
        config: testConfig({ PLATFORM_URL: "https://x.example" }),
      };
      await c.fault({ service: "ec2", action: "DescribeInstances", error: "RequestLimitExceeded" });

      // Act: the direct re-drive sees the mismatch; its lookup fails → pending, nothing thrown.
      const out = await launchWorkspace(changed, row as NonNullable<typeof row>, "sweep:launch");

      // Assess
      expect(out.kind).toBe("pending");
      expect(await rowOf(ws.id)).toMatchObject({ generation: 1, instanceId: null });
    });
  });

  describe("6. a missing permission is surfaced, never read as anything else", () => {
    async function seedProvisioning(n: number): Promise<string[]> {
      const instanceIds = await launchInstances(t.deps.aws.ec2, n);
      await waitFor(async () => {
        const all = await c.instances();
        const online = all.filter(
          (i) => instanceIds.includes(i.id) && i.ssmPingStatus === "Online",
        );
        return online.length === n ? true : undefined;
      }, 15_000);
      const rows = await t.opened.db
        .insert(workspaces)
        .values(
          instanceIds.map((instanceId, i) => ({
            name: `p-${i}`,
            runtime: "langgraph",
            status: "provisioning" as const,
            instanceId,
            generation: 1,
            launchedAt: new Date(Date.now() - 3_600_000),
          })),
        )
        .returning({ id: workspaces.id });
      return rows.map((r) => r.id);
    }

    it("readiness asks SSM in batches: 450 provisioning workspaces cost 9 calls, not 450", async () => {
      // Prepare: more than 300 rows, which a row-value IN list once silently dropped on PGlite.
      await seedProvisioning(450);
      await c.resetStats();
      // One attempt per call, and patient ones: the counts are of calls, not of retries.
      const counted: Deps = {
        ...t.deps,
        aws: c.clients({ maxAttempts: 1, requestTimeoutMs: 15_000 }),
      };

      // Act
      const summary = await sweep(["readiness"], counted);

      // Assess
      expect(summary.passes.readiness).toMatchObject({ checked: 450, changed: 450 });
      expect(await t.opened.db.$count(workspaces, eq(workspaces.status, "online"))).toBe(450);
      // 100 ids per filter, 50 per page: four filters of two pages and one of one.
      expect(await c.calls("ssm:DescribeInstanceInformation")).toBe(9);
      // 200 ids per DescribeInstances call.
      expect(await c.calls("ec2:DescribeInstances")).toBe(3);
    });

    it("a refused DescribeInstanceInformation stays transient and is named in lastError, the summary and one ERROR line", async () => {
      // Prepare
      const ids = await seedProvisioning(3);
      await c.fault({
        service: "ssm",
        action: "DescribeInstanceInformation",
        error: "AccessDeniedException",
      });
      const errors: { message: string; extra: Record<string, unknown>[] }[] = [];
      const log: Log = {
        ...t.deps.log,
        error: (message, ...extra) => errors.push({ message, extra }),
      };

      // Act
      const summary = await sweep(["readiness"], { ...t.deps, log });

      // Assess
      expect(summary.passes.readiness).toMatchObject({
        changed: 0,
        transient: 3,
        misconfigured: 3,
      });
      expect(summary.misconfigured).toBe(3);
      expect(summary.refusedActions).toEqual(["ssm:DescribeInstanceInformation"]);
      expect(errors).toHaveLength(1);
      expect(JSON.stringify(errors[0])).toContain("ssm:DescribeInstanceInformation");
      for (const id of ids) {
        const row = await rowOf(id);
        expect(row?.status).toBe("provisioning");
        expect(row?.lastError).toMatch(
          /AWS refused ssm:DescribeInstanceInformation \(AccessDeniedException\)/,
        );
      }
    });

    it("a refused DescribeInstances never takes an online workspace offline", async () => {
      // Prepare
      const ids = await seedProvisioning(2);
      await sweep(["readiness"]);
      await c.fault({
        service: "ec2",
        action: "DescribeInstances",
        error: "UnauthorizedOperation",
      });

      // Act
      const summary = await sweep(["liveness"]);

      // Assess
      expect(summary.passes.liveness).toMatchObject({ changed: 0, transient: 2, misconfigured: 2 });
      expect(summary.refusedActions).toEqual(["ec2:DescribeInstances"]);
      for (const id of ids) expect((await rowOf(id))?.status).toBe("online");
    });
  });

  describe("eventual consistency: EC2 does not list a new instance for a while", () => {
    const setLag = async (describeLagMs: number) => {
      const res = await fetch(`${c.url}/_localcloud/settings`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ describeLagMs }),
      });
      expect(res.status).toBe(200);
    };
    afterEach(() => setLag(0));

    it("a fresh instance EC2 does not list yet is transient: not failed, not orphaned, online once listed", async () => {
      // Prepare
      await setLag(1_500);
      const res = await t.admin("POST", "/workspaces", { name: "lagging" });
      const { workspace } = (await res.json()) as { workspace: Workspace };
      expect(workspace.instanceId).toMatch(/^i-/);
      // The row's launch time is its own, well inside a real launch grace.
      const inGrace: Deps = { ...t.deps, config: testConfig({ LAUNCH_GRACE_SECONDS: "300" }) };

      // Act: the sweep runs while EC2 still says InvalidInstanceID.NotFound.
      const early = await sweep(["readiness", "orphans"], inGrace);
      const status = await t.admin("GET", `/workspaces/${workspace.id}/status`);
      const ready = await waitFor(async () => {
        const s = await sweep(["readiness"], inGrace);
        return s.passes.readiness.changed > 0 ? s : undefined;
      });

      // Assess
      expect(early.passes.readiness).toMatchObject({ changed: 0, transient: 1 });
      expect(early.passes.orphans.changed).toBe(0);
      expect(((await status.json()) as { check: { outcome: string } }).check.outcome).toBe(
        "transient",
      );
      expect(ready.passes.readiness.changed).toBe(1);
      expect(await rowOf(workspace.id)).toMatchObject({
        status: "online",
        instanceId: workspace.instanceId,
      });
    });

    it("a lost answer under lag: registration cannot see the instance, the launch pass's re-drive adopts it", async () => {
      // Prepare
      await setLag(60_000);
      const ws = await createWithLostAnswer();

      // Act
      const registered = await t.as(agentToken(ws.id), "POST", "/registry/register");
      await age(ws.id);
      const launch = await sweep(["launch"]);

      // Assess: the lookup found nothing; RunInstances under the same token returned the instance.
      expect(await registered.json()).toEqual({ status: "provisioning" });
      expect(launch.passes.launch.changed).toBe(1);
      expect(await rowOf(ws.id)).toMatchObject({
        status: "provisioning",
        instanceId: ws.instanceId,
        generation: 1,
      });
      expect(await instancesOf(ws.id)).toHaveLength(1);
    });
  });

  describe("7. the guards that protect races", () => {
    it("liveness never marks offline a row that moved to another instance during its check", async () => {
      // Prepare: an online workspace on instance A; A is stopped (its restart terminated it).
      const [a, b] = await launchInstances(t.deps.aws.ec2, 2);
      const [row] = await t.opened.db
        .insert(workspaces)
        .values({
          name: "moving",
          runtime: "langgraph",
          status: "online",
          instanceId: a,
          generation: 1,
          launchedAt: new Date(Date.now() - 3_600_000),
        })
        .returning();
      await c.crash(a ?? "");
      await c.fault({ service: "ec2", action: "DescribeInstances", latencyMs: 300, times: 1 });

      // Act: while the check is in flight, the workspace comes online on instance B.
      const pass = sweep(["liveness"]);
      await new Promise((r) => setTimeout(r, 100));
      await t.opened.db
        .update(workspaces)
        .set({ instanceId: b, generation: 2 })
        .where(eq(workspaces.id, row?.id ?? ""));
      const summary = await pass;

      // Assess
      expect(summary.passes.liveness).toMatchObject({ checked: 1, changed: 0 });
      expect(await rowOf(row?.id ?? "")).toMatchObject({ status: "online", instanceId: b });
    });

    it("two restarts from the same read move the generation once (the instance guard)", async () => {
      // Prepare: both callers read the workspace on its first instance.
      const created = await t.admin("POST", "/workspaces", { name: "twice" });
      const { workspace } = (await created.json()) as { workspace: Workspace };
      const read = (await rowOf(workspace.id)) as NonNullable<Awaited<ReturnType<typeof rowOf>>>;

      // Act
      const results = await Promise.all([
        restartWorkspace(t.deps, read),
        restartWorkspace(t.deps, read),
      ]);

      // Assess
      expect(results.map((r) => r.kind).sort()).toEqual(["conflict", "launched"]);
      expect((await rowOf(workspace.id))?.generation).toBe(2);
      const live = (await instancesOf(workspace.id)).filter(
        (i) => i.state === "pending" || i.state === "running",
      );
      expect(live).toHaveLength(1);
    });

    it("readiness brings nothing online before its SSM agent is Online", async () => {
      // Prepare: a cloud whose agents take a minute to register with SSM.
      const slow = await startComputeCloud({ ssmOnlineDelayMs: 60_000 });
      try {
        const deps: Deps = { ...t.deps, aws: slow.clients({ maxAttempts: 1 }) };
        const [instanceId] = await launchInstances(deps.aws.ec2, 1);
        await waitFor(async () =>
          (await slow.instance(instanceId ?? "")).state === "running" ? 1 : undefined,
        );
        const [row] = await t.opened.db
          .insert(workspaces)
          .values({
            name: "unregistered",
            runtime: "langgraph",
            status: "provisioning",
            instanceId,
            generation: 1,
            launchedAt: new Date(Date.now() - 3_600_000),
          })
          .returning();

        // Act
        const summary = await sweep(["readiness"], deps);

        // Assess: EC2 says running, SSM does not know the agent yet.
        expect(summary.passes.readiness).toMatchObject({ checked: 1, changed: 0 });
        expect((await rowOf(row?.id ?? ""))?.status).toBe("provisioning");
      } finally {
        await slow.close();
      }
    });
  });
});
