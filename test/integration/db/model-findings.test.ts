import { access, cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Deps } from "../../../lib/deps.js";
import { INSTALL_CLAIM_SECONDS, listWorkspacePlugins } from "../../../lib/plugins/records.js";
import { type PassName, runSweep } from "../../../lib/sweep/run.js";
import type { Workspace } from "../../../lib/workspaces/model.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// Defects the model-based test (test/integration/postgres/model.test.ts) found, each reduced to
// the smallest scenario that shows it, with the model's seed; each failed before its fix.

let c: ComputeCloud;
let t: TestContext;
// A copy of the sample plugins, so a scenario can publish a new version.
let registry: string;

beforeAll(async () => {
  registry = await mkdtemp(join(tmpdir(), "model-findings-"));
  await cp(resolve("plugins"), registry, { recursive: true });
  c = await startComputeCloud();
  t = await createTestContext({
    env: { PLUGINS_DIR: registry, LAUNCH_GRACE_SECONDS: "1" },
    aws: c.clients({ maxAttempts: 1, requestTimeoutMs: 5_000 }),
  });
});
afterAll(async () => {
  await t?.close();
  await c?.close();
  await rm(registry, { recursive: true, force: true });
});
beforeEach(async () => {
  await t.reset();
});
afterEach(async () => {
  await c.clearFaults();
});

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );
const INSTALL_CLAIM_MS = INSTALL_CLAIM_SECONDS * 1000;
const later = (aheadMs: number): Deps => ({
  ...t.deps,
  clock: { now: () => new Date(Date.now() + aheadMs) },
});
const sweep = (passes: PassName[], deps: Deps = t.deps) =>
  runSweep(deps, { budget: { remainingMs: () => 60_000 }, passes });

async function createRunning(): Promise<Workspace> {
  const res = await t.admin("POST", "/workspaces", { name: "racing" });
  const { workspace } = (await res.json()) as { workspace: Workspace };
  await waitFor(async () => {
    const v = await c.instance(workspace.instanceId ?? "");
    return v.ssmPingStatus === "Online" ? v : undefined;
  });
  return workspace;
}

describe(`defects the model found, over ${dbKind()}`, () => {
  // Model seed 1075881942, path 7 (step 11: `restart(#1) | install(#7, code-review)` on one
  // workspace). The install's running check saw the old instance; the restart then moved the
  // workspace to a new generation and re-applied its plugins (none yet); the install's claim
  // came after that — `claimInstall` requires the workspace not removed, but not that it still
  // runs on the instance the claim names — so the program ran on the old instance (whose
  // termination had failed transiently) and the record ended `installed`. The new instance
  // never gets the plugin: the sweep finishes only in-progress records.
  it("an install whose claim lands after a restart is not recorded for the old instance", async () => {
    // Prepare: the install's running check is held back while the restart runs; the restart's
    // termination of the old instance fails (the orphan pass would take it later).
    const ws = await createRunning();
    await c.fault({ service: "ec2", action: "DescribeInstances", latencyMs: 300, times: 1 });
    await c.fault({ service: "ec2", action: "TerminateInstances", error: "InternalError" });

    // Act
    const install = t.admin("POST", `/workspaces/${ws.id}/plugins`, {
      source: "local://code-review",
    });
    await new Promise((r) => setTimeout(r, 100));
    const restart = await t.admin("POST", `/workspaces/${ws.id}/restart`);
    const installed = await install;
    await c.clearFaults();
    const fresh = await waitFor(async () => {
      await sweep(["readiness"]);
      const row = (await (await t.admin("GET", `/workspaces/${ws.id}`)).json()) as {
        workspace: Workspace;
      };
      return row.workspace.status === "online" ? row.workspace : undefined;
    });
    for (let i = 0; i < 3; i++) await sweep(["plugins", "orphans"], later(600_000));

    // Assess: whatever the install answered, an `installed` record means the workspace's
    // current instance holds the plugin.
    expect(restart.status).toBe(202);
    expect([200, 202, 409, 503]).toContain(installed.status);
    expect(fresh.instanceId).not.toBe(ws.instanceId);
    const [record] = await listWorkspacePlugins(t.opened.db, ws.id);
    const dir = (await c.instance(fresh.instanceId ?? "")).dir;
    const onDisk = await exists(join(dir, "configs/plugins/code-review/plugin.yaml"));
    if (record?.state === "installed") expect(onDisk).toBe(true);
    expect(record?.state === "installed" || record?.state === "failed" || !record).toBe(true);
  });

  // Found by reading lib/plugins/reconcile.ts while building the model.
  // An upgrade whose SendCommand answer was lost ran on the instance (the new version is in
  // place), but no sweep found its command before the claim expired (7 minutes without a
  // sweep, or ListCommands refused that long): `driveOperation` ends an expired claim on the
  // same instance as `unchanged` — the record goes back to the old version, `installed` —
  // without looking in SSM's history first, though the send's outcome was unknown.
  it("an expired upgrade whose send was lost ends as SSM's history says, not back at a version the instance no longer holds", async () => {
    // Prepare: 1.2.0 installed; 1.2.1 published; its send's answer lost, the program ran.
    const ws = await createRunning();
    const dir = (await c.instance(ws.instanceId ?? "")).dir;
    const first = await t.admin("POST", `/workspaces/${ws.id}/plugins`, {
      source: "local://code-review",
    });
    expect(first.status).toBe(200);
    const manifest = join(registry, "code-review/plugin.yaml");
    await writeFile(
      manifest,
      (await readFile(manifest, "utf8")).replace('version: "1.2.0"', 'version: "1.2.1"'),
    );
    await c.fault({ service: "ssm", action: "SendCommand", loseAnswer: "drop", times: 1 });
    const upgrade = await t.admin("POST", `/workspaces/${ws.id}/plugins`, {
      source: "local://code-review",
    });
    const installed = join(dir, "configs/plugins/code-review/plugin.yaml");
    await waitFor(async () =>
      (await readFile(installed, "utf8").catch(() => "")).includes("1.2.1") ? true : undefined,
    );

    // Act: the first sweep to look at the claim comes after it expired; it finds the command
    // in SSM's history, and the next reads its result.
    const record = await waitFor(async () => {
      await sweep(["plugins"], later(INSTALL_CLAIM_MS + 60_000));
      const [r] = await listWorkspacePlugins(t.opened.db, ws.id);
      return r?.state === "installing" ? undefined : r;
    });

    // Assess
    expect(upgrade.status).toBe(202);
    const onDisk = (await readFile(installed, "utf8")).match(/^version: "(.*)"$/m)?.[1];
    expect(onDisk).toBe("1.2.1");
    expect(record).toMatchObject({ state: "installed", version: "1.2.1" });
  });
});
