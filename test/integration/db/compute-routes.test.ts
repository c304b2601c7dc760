import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { workspaceEvents, workspaces } from "../../../lib/db/schema.js";
import type { Workspace } from "../../../lib/workspaces/model.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";
import {
  type ComputeCloud,
  type InstanceView,
  startComputeCloud,
  unknownInstanceId,
  waitFor,
} from "../compute/cloud.js";

// The compute routes over the database (PGlite and PostgreSQL) and the local cloud through the
// real SDK: create (launch), status (the running check), restart, delete, console.

let c: ComputeCloud;
let t: TestContext;

const DEPLOYMENT = "routes-test";

beforeAll(async () => {
  c = await startComputeCloud();
  t = await createTestContext({
    env: { DEPLOYMENT_ID: DEPLOYMENT },
    // Two attempts keep the throttled cases quick; the timeout keeps a hung call bounded.
    aws: c.clients({ maxAttempts: 2, requestTimeoutMs: 3_000 }),
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

interface ErrorBody {
  error: { code: string; message: string };
}

interface StatusBody {
  status: string;
  check: {
    outcome: string;
    instanceId: string | null;
    state: string | null;
    error?: { code: string; message: string };
  };
  heartbeatAgeSeconds: number | null;
}

async function create(
  body: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<{ status: number; workspace: Workspace }> {
  const res = await t.admin("POST", "/workspaces", { name: "agent", ...body }, headers);
  const json = (await res.json()) as { workspace: Workspace };
  return { status: res.status, workspace: json.workspace };
}

/** Creates an instance-backed workspace whose launch succeeded. */
async function createLaunched(): Promise<Workspace> {
  const { status, workspace } = await create();
  expect(status).toBe(201);
  expect(workspace.instanceId).toMatch(/^i-[0-9a-f]{17}$/);
  return workspace;
}

const instancesOf = async (workspaceId: string): Promise<InstanceView[]> =>
  (await c.instances()).filter((i) => i.tags["wcp:workspace-id"] === workspaceId);

async function waitForState(id: string, states: string[]): Promise<InstanceView> {
  return waitFor(async () => {
    const view = await c.instance(id);
    return states.includes(view.state) ? view : undefined;
  });
}

const statusOf = async (id: string) => {
  const res = await t.admin("GET", `/workspaces/${id}/status`);
  return { code: res.status, body: (await res.json()) as StatusBody };
};

const stored = async (id: string) => {
  const res = await t.admin("GET", `/workspaces/${id}`);
  return ((await res.json()) as { workspace: Workspace }).workspace;
};

const eventCount = async () => (await t.opened.db.select().from(workspaceEvents)).length;

describe(`compute routes over ${dbKind()}`, () => {
  describe("POST /workspaces", () => {
    it("launches the instance with the workspace's tags and its ClientToken", async () => {
      // Act
      const ws = await createLaunched();

      // Assess
      expect(ws).toMatchObject({ status: "provisioning", generation: 1, lastError: null });
      expect(ws.launchedAt).not.toBeNull();
      const [inst, ...others] = await instancesOf(ws.id);
      expect(others).toEqual([]);
      expect(inst?.id).toBe(ws.instanceId);
      expect(inst?.tags).toEqual({
        "wcp:managed": "true",
        "wcp:deployment": DEPLOYMENT,
        "wcp:workspace-id": ws.id,
        "wcp:generation": "1",
        Name: `ws-${ws.id.slice(0, 12)}`,
      });
      expect(inst?.clientToken).toBe(`${ws.id}:1`);
      expect(inst?.instanceType).toBe("t3.small");
    });

    it("answers 201 with instanceId null and a lastError when RunInstances fails transiently", async () => {
      // Prepare
      await c.fault({ service: "ec2", action: "RunInstances", error: "RequestLimitExceeded" });
      await c.resetStats();

      // Act
      const { status, workspace } = await create();

      // Assess
      expect(status).toBe(201);
      expect(workspace).toMatchObject({ status: "provisioning", instanceId: null });
      expect(workspace.lastError).toMatch(/RequestLimitExceeded/);
      expect(await instancesOf(workspace.id)).toEqual([]);
      expect(await c.calls("ec2:RunInstances")).toBe(2);
    });

    it("marks the workspace failed with a lastError when EC2 refuses the launch", async () => {
      await c.fault({ service: "ec2", action: "RunInstances", error: "InvalidAMIID.Malformed" });

      const { status, workspace } = await create();

      expect(status).toBe(201);
      expect(workspace).toMatchObject({ status: "failed", instanceId: null });
      expect(workspace.lastError).toMatch(/^InvalidAMIID\.Malformed: /);
      expect(await instancesOf(workspace.id)).toEqual([]);
    });

    it("launches a workspace whose env holds quotes, $() and {{ }}", async () => {
      const env = { PROMPT: `Say "hi" to {{ .Name }} $(whoami) it's` };

      const { status, workspace } = await create({ env });

      expect(status).toBe(201);
      expect(workspace.instanceId).toMatch(/^i-/);
      expect(workspace.envKeys).toEqual(["PROMPT"]);
    });

    it("20 concurrent creates with one Idempotency-Key make one workspace and one instance", async () => {
      // Prepare
      await c.resetStats();
      const headers = { "idempotency-key": `key-${Date.now()}` };

      // Act
      const results = await Promise.all(
        Array.from({ length: 20 }, () => create({ name: "same" }, headers)),
      );

      // Assess
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([...Array(19).fill(200), 201]);
      const ids = new Set(results.map((r) => r.workspace.id));
      expect(ids.size).toBe(1);
      const [id = ""] = ids;
      expect(await t.opened.db.select().from(workspaces)).toHaveLength(1);
      expect(await instancesOf(id)).toHaveLength(1);
      expect(await c.calls("ec2:RunInstances")).toBe(1);
    });
  });

  describe("GET /workspaces/:id/status", () => {
    it("reports running once the instance booted", async () => {
      // Prepare
      const ws = await createLaunched();
      await waitForState(ws.instanceId ?? "", ["running"]);

      // Act
      const { code, body } = await statusOf(ws.id);

      // Assess
      expect(code).toBe(200);
      expect(body).toEqual({
        status: "provisioning",
        check: { outcome: "running", instanceId: ws.instanceId, state: "running" },
        heartbeatAgeSeconds: null,
      });
    });

    it("reports stopped after the instance crashed, and leaves the stored status alone", async () => {
      // Prepare
      const ws = await createLaunched();
      const id = ws.instanceId ?? "";
      await waitForState(id, ["running"]);
      await c.crash(id);
      const events = await eventCount();

      // Act
      const { code, body } = await statusOf(ws.id);

      // Assess
      expect(code).toBe(200);
      expect(body.check).toEqual({ outcome: "stopped", instanceId: id, state: "stopped" });
      expect(body.status).toBe("provisioning");
      expect((await stored(ws.id)).status).toBe("provisioning");
      expect(await eventCount()).toBe(events);
    });

    it("reports transient with the error under a DescribeInstances throttle, changing nothing", async () => {
      // Prepare
      const ws = await createLaunched();
      const id = ws.instanceId ?? "";
      await waitForState(id, ["running"]);
      const before = await stored(ws.id);
      const events = await eventCount();
      await c.fault({ service: "ec2", action: "DescribeInstances", error: "RequestLimitExceeded" });

      // Act
      const { code, body } = await statusOf(ws.id);

      // Assess
      expect(code).toBe(200);
      expect(body.check).toMatchObject({
        outcome: "transient",
        instanceId: id,
        state: null,
        error: { code: "RequestLimitExceeded" },
      });
      expect(body.check.error?.message).toMatch(/HTTP 503/);
      expect(await stored(ws.id)).toEqual(before);
      expect(await eventCount()).toBe(events);
    });

    it("reports none for an external workspace without calling EC2", async () => {
      const { workspace } = await create({ runtime: "external" });
      await c.resetStats();

      const { code, body } = await statusOf(workspace.id);

      expect(code).toBe(200);
      expect(body.check).toEqual({ outcome: "none", instanceId: null, state: null });
      expect(await c.calls("ec2:DescribeInstances")).toBe(0);
    });
  });

  describe("POST /workspaces/:id/restart", () => {
    it("answers 202 with a new generation and a new instance, the old one terminated", async () => {
      // Prepare
      const ws = await createLaunched();
      const old = ws.instanceId ?? "";

      // Act
      const res = await t.admin("POST", `/workspaces/${ws.id}/restart`);
      const body = (await res.json()) as { workspace: Workspace };

      // Assess
      expect(res.status).toBe(202);
      expect(body.workspace).toMatchObject({ status: "provisioning", generation: 2 });
      expect(body.workspace.instanceId).toMatch(/^i-/);
      expect(body.workspace.instanceId).not.toBe(old);
      expect(["shutting-down", "terminated"]).toContain((await c.instance(old)).state);
      const fresh = await c.instance(body.workspace.instanceId ?? "");
      expect(fresh.clientToken).toBe(`${ws.id}:2`);
      expect(["pending", "running"]).toContain(fresh.state);
    });

    it("answers 502 LAUNCH_FAILED when EC2 refuses the new launch, the workspace failed", async () => {
      // Prepare
      const ws = await createLaunched();
      await c.fault({ service: "ec2", action: "RunInstances", error: "InvalidAMIID.Malformed" });

      // Act
      const res = await t.admin("POST", `/workspaces/${ws.id}/restart`);

      // Assess
      expect(res.status).toBe(502);
      const body = (await res.json()) as ErrorBody;
      expect(body.error.code).toBe("LAUNCH_FAILED");
      expect(body.error.message).toContain("InvalidAMIID.Malformed");
      expect(await stored(ws.id)).toMatchObject({ status: "failed", instanceId: null });
    });

    it("answers 409 WORKSPACE_REMOVED when a DELETE wins during the launch, and leaves no instance running", async () => {
      // Prepare: RunInstances answers slowly, so the DELETE lands while the restart waits for it.
      const ws = await createLaunched();
      const old = ws.instanceId ?? "";
      await c.fault({ service: "ec2", action: "RunInstances", latencyMs: 1_500, times: 1 });
      await c.resetStats();

      // Act
      const restart = t.admin("POST", `/workspaces/${ws.id}/restart`);
      await waitFor(async () => ((await c.calls("ec2:RunInstances")) > 0 ? true : undefined));
      const del = await t.admin("DELETE", `/workspaces/${ws.id}`);
      const res = await restart;

      // Assess: each answer says what happened, and no instance of the workspace keeps running.
      expect(del.status).toBe(200);
      expect(res.status).toBe(409);
      expect(((await res.json()) as ErrorBody).error.code).toBe("WORKSPACE_REMOVED");
      expect((await stored(ws.id)).status).toBe("removed");
      const mine = await instancesOf(ws.id);
      expect(mine.map((i) => i.id)).toContain(old);
      expect(mine).toHaveLength(2);
      for (const inst of mine) expect(["shutting-down", "terminated"]).toContain(inst.state);
    });

    it("answers 422 EXTERNAL_RUNTIME for an external workspace", async () => {
      const { workspace } = await create({ runtime: "external" });

      const res = await t.admin("POST", `/workspaces/${workspace.id}/restart`);

      expect(res.status).toBe(422);
      expect(((await res.json()) as ErrorBody).error.code).toBe("EXTERNAL_RUNTIME");
    });
  });

  describe("DELETE /workspaces/:id", () => {
    it("answers 200 removed with the instance terminated", async () => {
      const ws = await createLaunched();

      const res = await t.admin("DELETE", `/workspaces/${ws.id}`);

      expect(res.status).toBe(200);
      expect(((await res.json()) as { workspace: Workspace }).workspace.status).toBe("removed");
      expect(["shutting-down", "terminated"]).toContain(
        (await c.instance(ws.instanceId ?? "")).state,
      );
    });

    it("racing a create's launch: the create answers 201 removed and its instance is terminated", async () => {
      // Prepare
      await c.fault({ service: "ec2", action: "RunInstances", latencyMs: 1_500, times: 1 });
      await c.resetStats();

      // Act: the DELETE lands while the create waits for RunInstances.
      const creating = create();
      await waitFor(async () => ((await c.calls("ec2:RunInstances")) > 0 ? true : undefined));
      const [row] = await t.opened.db.select().from(workspaces);
      const del = await t.admin("DELETE", `/workspaces/${row?.id}`);
      const created = await creating;

      // Assess
      expect(del.status).toBe(200);
      expect(created.status).toBe(201);
      expect(created.workspace).toMatchObject({ id: row?.id, status: "removed", instanceId: null });
      const mine = await instancesOf(row?.id ?? "");
      expect(mine).toHaveLength(1);
      expect(["shutting-down", "terminated"]).toContain(mine[0]?.state);
    });

    it("answers 202 removing when TerminateInstances fails transiently, and finishes on retry", async () => {
      // Prepare
      const ws = await createLaunched();
      const id = ws.instanceId ?? "";
      await c.fault({ service: "ec2", action: "TerminateInstances", error: "InternalError" });

      // Act
      const first = await t.admin("DELETE", `/workspaces/${ws.id}`);
      const firstBody = (await first.json()) as { workspace: Workspace };
      const stateMeanwhile = (await c.instance(id)).state;
      await c.clearFaults();
      const second = await t.admin("DELETE", `/workspaces/${ws.id}`);

      // Assess
      expect(first.status).toBe(202);
      expect(firstBody.workspace.status).toBe("removing");
      expect(["pending", "running"]).toContain(stateMeanwhile);
      expect(second.status).toBe(200);
      expect(((await second.json()) as { workspace: Workspace }).workspace.status).toBe("removed");
      expect(["shutting-down", "terminated"]).toContain((await c.instance(id)).state);
    });
  });

  describe("GET /workspaces/:id/console", () => {
    it("answers 200 with the decoded console output", async () => {
      // Prepare
      const ws = await createLaunched();
      const id = ws.instanceId ?? "";

      // Act: the boot lines appear once the instance is running.
      const body = await waitFor(async () => {
        const res = await t.admin("GET", `/workspaces/${ws.id}/console`);
        expect(res.status).toBe(200);
        const json = (await res.json()) as {
          instanceId: string;
          output: string;
          timestamp: string;
        };
        return json.output.includes("files prepared") ? json : undefined;
      });

      // Assess
      expect(body.instanceId).toBe(id);
      expect(body.output).toContain(`instance ${id} booted`);
      expect(body.output).toContain(`workspace ${ws.id}: files prepared`);
      expect(Number.isNaN(Date.parse(body.timestamp))).toBe(false);
    });

    it("answers 409 INSTANCE_GONE once EC2 no longer has the instance, past the launch grace", async () => {
      // Prepare: the row names an instance EC2 does not know (purged after termination).
      const ws = await createLaunched();
      const gone = unknownInstanceId(0xdead);
      await t.opened.db
        .update(workspaces)
        .set({ instanceId: gone, launchedAt: new Date(Date.now() - 3_600_000) })
        .where(eq(workspaces.id, ws.id));

      // Act
      const res = await t.admin("GET", `/workspaces/${ws.id}/console`);

      // Assess
      expect(res.status).toBe(409);
      const body = (await res.json()) as ErrorBody & { error: { hint?: string } };
      expect(body.error.code).toBe("INSTANCE_GONE");
      expect(body.error.message).toContain(gone);
      expect(body.error.hint).toMatch(/restart/);
    });

    it("answers 503 UPSTREAM_UNAVAILABLE for an instance EC2 does not list yet, inside the grace", async () => {
      const ws = await createLaunched();
      await t.opened.db
        .update(workspaces)
        .set({ instanceId: unknownInstanceId(0xbeef), launchedAt: new Date() })
        .where(eq(workspaces.id, ws.id));

      const res = await t.admin("GET", `/workspaces/${ws.id}/console`);

      expect(res.status).toBe(503);
      expect(((await res.json()) as ErrorBody).error.code).toBe("UPSTREAM_UNAVAILABLE");
    });

    it("still answers a terminated instance's last console output", async () => {
      // Prepare
      const ws = await createLaunched();
      const id = ws.instanceId ?? "";
      await waitForState(id, ["running"]);
      await c.clients().ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
      await waitForState(id, ["terminated"]);

      // Act
      const res = await t.admin("GET", `/workspaces/${ws.id}/console`);

      // Assess
      expect(res.status).toBe(200);
      expect(((await res.json()) as { output: string }).output).toContain(`instance ${id} booted`);
    });

    it("answers 422 EXTERNAL_RUNTIME for an external workspace", async () => {
      const { workspace } = await create({ runtime: "external" });

      const res = await t.admin("GET", `/workspaces/${workspace.id}/console`);

      expect(res.status).toBe(422);
      expect(((await res.json()) as ErrorBody).error.code).toBe("EXTERNAL_RUNTIME");
    });
  });
});
