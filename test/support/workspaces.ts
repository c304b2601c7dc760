import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import {
  type ClientSettings,
  type ComputeCloud,
  startComputeCloud,
  waitFor,
} from "../integration/compute/cloud.js";
import { createTestContext, type TestContext } from "./context.js";

/**
 * The world of a route suite over the local cloud: one cloud and one database per file, both
 * reset between tests (tables emptied, call counts zeroed, faults cleared). `ready` receives
 * them once they are up.
 */
export function useCloudSuite(
  opts: { env?: Record<string, string>; clients?: ClientSettings },
  ready: (world: { c: ComputeCloud; t: TestContext }) => void,
): void {
  let c: ComputeCloud | undefined;
  let t: TestContext | undefined;
  beforeAll(async () => {
    c = await startComputeCloud();
    t = await createTestContext({
      ...(opts.env && { env: opts.env }),
      aws: c.clients(opts.clients ?? { maxAttempts: 2 }),
    });
    ready({ c, t });
  });
  afterAll(async () => {
    await t?.close();
    await c?.close();
  });
  beforeEach(async () => {
    await t?.reset();
    await c?.resetStats();
  });
  afterEach(async () => {
    await c?.clearFaults();
  });
}

export interface RunningWorkspace {
  id: string;
  instanceId: string;
  /** The instance's disk: where $WORKSPACE_ROOT points. */
  dir: string;
}

/** An instance-backed workspace whose instance runs with its SSM agent Online. */
export async function createRunning(
  t: TestContext,
  c: ComputeCloud,
  name = "agent",
): Promise<RunningWorkspace> {
  const res = await t.admin("POST", "/workspaces", { name });
  const { workspace } = (await res.json()) as { workspace: { id: string; instanceId: string } };
  const view = await waitFor(async () => {
    const v = await c.instance(workspace.instanceId);
    return v.state === "running" && v.ssmPingStatus === "Online" ? v : undefined;
  });
  return { id: workspace.id, instanceId: workspace.instanceId, dir: view.dir };
}

/** An instance-backed workspace whose launch EC2 refused (throttled): no instance yet. */
export async function createPending(t: TestContext, c: ComputeCloud): Promise<{ id: string }> {
  await c.fault({
    service: "ec2",
    action: "RunInstances",
    error: "RequestLimitExceeded",
    times: 10,
  });
  const res = await t.admin("POST", "/workspaces", { name: "pending" });
  await c.clearFaults();
  return { id: ((await res.json()) as { workspace: { id: string } }).workspace.id };
}
