import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { workspaces } from "../../../lib/db/schema.js";
import type { Deps } from "../../../lib/deps.js";
import { createApp } from "../../../lib/http/app.js";
import { listWorkspacePlugins } from "../../../lib/plugins/records.js";
import { acquireLease } from "../../../lib/sweep/lease.js";
import { type PassName, runSweep } from "../../../lib/sweep/run.js";
import type { Workspace } from "../../../lib/workspaces/model.js";
import { rowsOf } from "../../../lib/workspaces/transition.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { startTarballServer, type TarballServer } from "../../support/plugin-fixtures.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// Everything inside its deadline (issue 13): a request gets one (29 s, or Lambda's remaining time,
// or a short budget here) and a sweep run gets its budget; every step takes at most what is left.
// No assertion on wall time: the answers (504, 202) and the AWS calls made say what happened.

let c: ComputeCloud;
let t: TestContext;
let hanging: TarballServer;

beforeAll(async () => {
  c = await startComputeCloud();
  // A source that never answers.
  hanging = await startTarballServer(() => new Promise(() => {}));
  t = await createTestContext({
    // A fetch timeout far past the budgets below: only the request's deadline can cut the fetch.
    env: {
      PLUGINS_DIR: resolve("plugins"),
      GITHUB_TARBALL_BASE: hanging.url,
      PLUGIN_FETCH_TIMEOUT_SECONDS: "20",
      INSTALL_SYNC_WAIT_SECONDS: "2",
    },
    aws: c.clients({ maxAttempts: 3, requestTimeoutMs: 5_000 }),
  });
});
afterAll(async () => {
  await t?.close();
  await hanging?.close();
  await c?.close();
});
beforeEach(async () => {
  await t.reset();
  await c.resetStats();
});
afterEach(async () => {
  await c.clearFaults();
});

const later = (aheadMs: number): Deps => ({
  ...t.deps,
  clock: { now: () => new Date(Date.now() + aheadMs) },
});
const sweep = (deps: Deps, passes: PassName[], budgetMs = 60_000, leaseSeconds?: number) => {
  const end = Date.now() + budgetMs;
  return runSweep(deps, {
    budget: { remainingMs: () => end - Date.now() },
    passes,
    ...(leaseSeconds !== undefined && { leaseSeconds }),
  });
};

async function createRunning(): Promise<{ id: string; instanceId: string; dir: string }> {
  const res = await t.admin("POST", "/workspaces", { name: "timed" });
  const { workspace } = (await res.json()) as { workspace: Workspace };
  const view = await waitFor(async () => {
    const v = await c.instance(workspace.instanceId ?? "");
    return v.ssmPingStatus === "Online" ? v : undefined;
  });
  return { id: workspace.id, instanceId: view.id, dir: view.dir };
}

const installWith = (budgetMs: number, id: string, source: string) =>
  createApp(t.deps, { requestBudgetMs: budgetMs }).request(`/workspaces/${id}/plugins`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${t.deps.config.adminToken}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({ source }),
  });

describe(`deadlines over ${dbKind()}`, () => {
  describe("a request never outlives its deadline", () => {
    it("an install whose source never answers is cut at the request's budget: 504, nothing claimed", async () => {
      // Prepare
      const ws = await createRunning();

      // Act: a budget of 8 s leaves the fetch 2 s (the rest is for staging and answering).
      const res = await installWith(8_000, ws.id, "github://acme/slow#v1");

      // Assess
      expect(res.status).toBe(504);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
        "SOURCE_FETCH_TIMEOUT",
      );
      expect(await listWorkspacePlugins(t.opened.db, ws.id)).toEqual([]);
      expect(await c.calls("ssm:SendCommand")).toBe(0);
      // (The test's own timeout is the budget's bound: the fetch's own 20 s would outlast it.)
    }, 12_000);

    it("an install whose staging put leaves no time to send answers 202; the sweep sends it", async () => {
      // Prepare: the put takes 4.5 s of a 7 s budget.
      const ws = await createRunning();
      await c.fault({ service: "s3", action: "PutObject", latencyMs: 4_500, times: 1 });

      // Act
      const res = await installWith(7_000, ws.id, "local://code-review");
      const sendsInRequest = await c.calls("ssm:SendCommand");
      const done = await waitFor(async () => {
        await sweep(later(120_000), ["plugins"]);
        const [row] = await listWorkspacePlugins(t.opened.db, ws.id);
        return row?.state === "installed" ? row : undefined;
      }, 10_000);

      // Assess
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({
        status: "installing",
        plugin: "code-review",
        commandId: null,
      });
      expect(sendsInRequest).toBe(0);
      expect(done).toMatchObject({ version: "1.2.0" });
      expect(await c.calls("ssm:SendCommand")).toBe(1);
    });

    it("an uninstall waits no longer than the request allows: 202, and the sweep finishes it", async () => {
      // Prepare: installed; then another holder keeps the plugin's lock on the instance for 4 s,
      // so the uninstall program cannot finish inside a 3 s budget.
      const ws = await createRunning();
      expect((await installWith(29_000, ws.id, "local://code-review")).status).toBe(200);
      mkdirSync(join(ws.dir, ".locks"), { recursive: true });
      const holder = spawn("flock", [join(ws.dir, ".locks", "plugin-code-review"), "sleep", "4"]);
      await new Promise((r) => setTimeout(r, 200));

      // Act
      const res = await createApp(t.deps, { requestBudgetMs: 3_000 }).request(
        `/workspaces/${ws.id}/plugins/code-review`,
        { method: "DELETE", headers: { authorization: `Bearer ${t.deps.config.adminToken}` } },
      );
      const body = (await res.json()) as { status: string; commandId: string | null };
      await new Promise<void>((r) => holder.on("exit", () => r()));
      const gone = await waitFor(async () => {
        await sweep(t.deps, ["plugins"]);
        const rows = await listWorkspacePlugins(t.opened.db, ws.id);
        return rows.length === 0 ? rows : undefined;
      }, 10_000);

      // Assess
      expect(res.status).toBe(202);
      expect(body.status).toBe("uninstalling");
      expect(body.commandId).toMatch(/^[0-9a-f-]{36}$/);
      expect(gone).toEqual([]);
    });
  });

  describe("a sweep run never outlives its budget", () => {
    it("20 launches against a hanging RunInstances stop at the budget: only the first two are tried", async () => {
      // Prepare: 20 launch rows whose answers were lost long ago.
      await t.opened.db.insert(workspaces).values(
        Array.from({ length: 20 }, (_, i) => ({
          name: `hang-${i}`,
          runtime: "langgraph",
          status: "provisioning" as const,
          generation: 1,
        })),
      );
      await t.opened.db.execute(
        sql`update workspaces set updated_at = now() - interval '1 minute'`,
      );
      await c.fault({ service: "ec2", action: "RunInstances", hang: true });

      // Act: a 7 s budget (5 s of it is the reserve below which no item starts).
      const summary = await sweep(t.deps, ["launch"], 7_000);

      // Assess: two in flight (each retried once after its own 5 s timeout, the retry cut at the
      // run's deadline), then no more items — not 20 rows × 3 attempts.
      expect(summary.passes.launch.checked).toBe(20);
      expect(await c.calls("ec2:RunInstances")).toBeLessThanOrEqual(4);
      expect(summary.passes.launch.transient).toBeLessThanOrEqual(2);
    });

    it("a pass's lease is short and renewed while the pass works", async () => {
      // Prepare: a liveness pass slowed to 4 s by its DescribeInstances, with 2 s leases.
      const [row] = await t.opened.db
        .insert(workspaces)
        .values({
          name: "slow",
          runtime: "langgraph",
          status: "online",
          instanceId: "i-0123456789abcdef0",
          generation: 1,
          launchedAt: new Date(Date.now() - 3_600_000),
        })
        .returning();
      expect(row).toBeDefined();
      await c.fault({ service: "ec2", action: "DescribeInstances", latencyMs: 4_000, times: 1 });

      // Act: a second run tries the pass while the first is still in it, past its first lease.
      const first = sweep(t.deps, ["liveness"], 60_000, 2);
      await new Promise((r) => setTimeout(r, 2_600));
      const lease = rowsOf(
        await t.opened.db.execute(
          sql`select extract(epoch from expires_at - now()) as left from sweep_leases where name = 'sweep:liveness'`,
        ),
      );
      const second = await sweep(t.deps, ["liveness"], 60_000, 2);
      await first;

      // Assess: the lease was renewed (still held past its first 2 s, never more than 2 s ahead).
      expect(second.passes.liveness.skipped).toBe("leased");
      expect(Number(lease[0]?.left)).toBeGreaterThan(0);
      expect(Number(lease[0]?.left)).toBeLessThanOrEqual(2.5);
    });

    it("a run killed inside a pass blocks that pass only until its lease runs out", async () => {
      // Prepare: the lease a pass takes lives its lease time, not the run's whole budget.
      await c.fault({ service: "ec2", action: "DescribeInstances", latencyMs: 1_000, times: 1 });
      await t.opened.db.insert(workspaces).values({
        name: "held",
        runtime: "langgraph",
        status: "online",
        instanceId: "i-0123456789abcdef1",
        generation: 1,
        launchedAt: new Date(Date.now() - 3_600_000),
      });
      const running = sweep(t.deps, ["liveness"], 60_000, 2);
      await new Promise((r) => setTimeout(r, 300));
      const taken = rowsOf(
        await t.opened.db.execute(
          sql`select extract(epoch from expires_at - now()) as left from sweep_leases where name = 'sweep:liveness'`,
        ),
      );
      await running;
      // A run took the lease and died (it never released it).
      await acquireLease(t.opened.db, "sweep:external", "killed-run", 1);

      // Act
      const blocked = await sweep(t.deps, ["external"], 60_000, 1);
      await new Promise((r) => setTimeout(r, 1_200));
      const after = await sweep(t.deps, ["external"], 60_000, 1);

      // Assess
      expect(Number(taken[0]?.left)).toBeLessThanOrEqual(2.1);
      expect(blocked.passes.external.skipped).toBe("leased");
      expect(after.passes.external.skipped).toBeUndefined();
    });
  });
});
