import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../../lib/config.js";
import { workspaces, workspaceTokens } from "../../../lib/db/schema.js";
import type { Deps } from "../../../lib/deps.js";
import { runSweep } from "../../../lib/sweep/run.js";
import { createWorkspace } from "../../../lib/workspaces/create.js";
import { restartWorkspace } from "../../../lib/workspaces/restart.js";
import { InstanceTokenKeyError } from "../../../lib/workspaces/tokens.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// Instance tokens are HMAC(ADMIN_TOKEN, …). A deployment without that key must not launch an
// instance at all: with an empty key every instance token is computable from a workspace id.

let c: ComputeCloud;
let t: TestContext;
/** The same deployment, configured without ADMIN_TOKEN. */
let keyless: Deps;

beforeAll(async () => {
  c = await startComputeCloud();
  t = await createTestContext({ aws: c.clients({ maxAttempts: 1 }) });
  keyless = { ...t.deps, config: loadConfig({ LOG_LEVEL: "SILENT" }, "local") };
});

afterAll(async () => {
  await t?.close();
  await c?.close();
});

beforeEach(async () => {
  await t.reset();
  await c.resetStats();
});

const input = { name: "agent", runtime: "langgraph", tier: 1, env: {} };

describe(`instance-token derivation fails closed over ${dbKind()}`, () => {
  it("creating an instance-backed workspace without a key writes nothing", async () => {
    await expect(createWorkspace(keyless, input)).rejects.toThrow(InstanceTokenKeyError);

    expect(await t.opened.db.select().from(workspaces)).toEqual([]);
    expect(await t.opened.db.select().from(workspaceTokens)).toEqual([]);
    // External workspaces carry a random token and need no key.
    const ext = await createWorkspace(keyless, { ...input, runtime: "external" });
    expect(ext.kind).toBe("created");
  });

  it("the sweep does not re-drive a launch without a key: no RunInstances, the reason recorded", async () => {
    // Prepare: a provisioning row whose launch is due for a re-drive.
    const [row] = await t.opened.db
      .insert(workspaces)
      .values({ name: "redrive", runtime: "langgraph", status: "provisioning", generation: 1 })
      .returning();
    const id = row?.id ?? "";
    await t.opened.db.execute(
      sql`update workspaces set updated_at = now() - interval '31 seconds' where id = ${id}`,
    );

    // Act
    const summary = await runSweep(keyless, {
      budget: { remainingMs: () => 60_000 },
      passes: ["launch"],
    });

    // Assess
    expect(summary.passes.launch).toMatchObject({ checked: 1, changed: 0, errors: 0 });
    expect(await c.calls("ec2:RunInstances")).toBe(0);
    const [after] = await t.opened.db.select().from(workspaces).where(eq(workspaces.id, id));
    expect(after).toMatchObject({ status: "provisioning", instanceId: null });
    expect(after?.lastError).toMatch(/InstanceTokenKeyMissing/);
  });

  it("restarting without a key changes nothing and launches nothing", async () => {
    // Prepare: a workspace launched while the key was there.
    const created = await t.admin("POST", "/workspaces", input);
    const { workspace } = (await created.json()) as {
      workspace: { id: string; instanceId: string };
    };
    const [before] = await t.opened.db
      .select()
      .from(workspaces)
      .where(eq(workspaces.id, workspace.id));
    if (!before) throw new Error("not created");
    await c.resetStats();

    // Act
    await expect(restartWorkspace(keyless, before)).rejects.toThrow(InstanceTokenKeyError);

    // Assess
    const [after] = await t.opened.db.select().from(workspaces).where(eq(workspaces.id, before.id));
    expect(after).toEqual(before);
    expect(await c.calls("ec2:RunInstances")).toBe(0);
    expect(await c.calls("ec2:TerminateInstances")).toBe(0);
    const inst = await waitFor(async () => {
      const view = await c.instance(workspace.instanceId);
      return view.state === "running" ? view : undefined;
    });
    expect(inst.state).toBe("running");
  });
});
