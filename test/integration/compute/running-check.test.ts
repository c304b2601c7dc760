import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  checkInstance,
  checkInstances,
  type InstanceCheck,
  MAX_IDS_PER_CALL,
} from "../../../lib/compute/instances.js";
import {
  type ComputeCloud,
  type ComputeDeps,
  type FaultSpec,
  startComputeCloud,
  unknownInstanceId,
  waitFor,
} from "./cloud.js";

// THE running check against the local cloud through the real SDK: every outcome, every fault the
// local cloud can inject on DescribeInstances, and the batching that keeps the sweep's cost at
// ⌈N/200⌉ calls.

const DESCRIBE = "ec2:DescribeInstances";
const GRACE_SECONDS = 120;
const env = { LAUNCH_GRACE_SECONDS: String(GRACE_SECONDS) };

let c: ComputeCloud;
let deps: ComputeDeps;
/** Booted to `running` before the tests start. */
let running: string;
/** 1,000 instances launched through RunInstances; 50 of them terminated. */
let fleet: string[];
let terminated: Set<string>;

const ago = (seconds: number) => new Date(Date.now() - seconds * 1000);
const describeCalls = () => c.calls(DESCRIBE);

beforeAll(async () => {
  // Slow enough transitions that `pending` and `shutting-down` can be observed on purpose.
  c = await startComputeCloud({ bootDelayMs: 1_000, terminateDelayMs: 1_000 });
  deps = c.deps({ env });
  [running = ""] = await c.launchMany(1);
  fleet = await c.launchMany(1_000);
  terminated = new Set(fleet.filter((_, i) => i % 20 === 7));
  await c.clients().ec2.send(new TerminateInstancesCommand({ InstanceIds: [...terminated] }));
  await waitFor(
    async () => ((await c.instance(running)).state === "running" ? true : undefined),
    10_000,
  );
});

afterAll(async () => {
  await c?.close();
});

afterEach(async () => {
  await c.clearFaults();
});

describe("outcomes", () => {
  it("reports a pending instance as running, and still running once it booted", async () => {
    // Prepare
    const [id = ""] = await c.launchMany(1);

    // Act
    const early = await checkInstance(deps, id, new Date());
    await waitFor(async () => ((await c.instance(id)).state === "running" ? true : undefined));
    const later = await checkInstance(deps, id, new Date());

    // Assess
    expect(early).toEqual({ outcome: "running", instanceId: id, state: "pending" });
    expect(later).toEqual({ outcome: "running", instanceId: id, state: "running" });
  });

  it("reports an instance crashed through the control API as stopped", async () => {
    // Prepare
    const [id = ""] = await c.launchMany(1);
    await waitFor(async () => ((await c.instance(id)).state === "running" ? true : undefined));

    // Act
    await c.crash(id);
    const check = await checkInstance(deps, id, ago(10));

    // Assess
    expect(check).toEqual({
      outcome: "stopped",
      instanceId: id,
      state: "stopped",
      reason: "Server.InternalError",
    });
  });

  it("reports shutting-down and then terminated instances as stopped", async () => {
    // Prepare
    const [id = ""] = await c.launchMany(1);
    await c.clients().ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));

    // Act
    const shuttingDown = await checkInstance(deps, id, new Date());
    await waitFor(async () => ((await c.instance(id)).state === "terminated" ? true : undefined));
    const gone = await checkInstance(deps, id, new Date());

    // Assess
    expect(shuttingDown).toMatchObject({
      outcome: "stopped",
      instanceId: id,
      state: "shutting-down",
    });
    expect(gone).toMatchObject({ outcome: "stopped", instanceId: id, state: "terminated" });
    expect(gone).toHaveProperty("reason", "Client.UserInitiatedShutdown");
  });

  it("reports an id EC2 does not list as stopped not-found past the launch grace", async () => {
    const id = unknownInstanceId(1);
    expect(await checkInstance(deps, id, ago(GRACE_SECONDS + 1))).toEqual({
      outcome: "stopped",
      instanceId: id,
      state: "not-found",
    });
    // An unknown launch time gives no grace at all.
    expect(await checkInstance(deps, id, null)).toEqual({
      outcome: "stopped",
      instanceId: id,
      state: "not-found",
    });
  });

  it("reports an id EC2 does not list yet as transient inside the launch grace", async () => {
    const id = unknownInstanceId(2);

    const check = await checkInstance(deps, id, ago(GRACE_SECONDS - 5));

    expect(check).toMatchObject({
      outcome: "transient",
      instanceId: id,
      error: { code: "NotYetVisible" },
    });
  });

  it("names several instances, known and unknown, in one call without failing the call", async () => {
    // One unknown id in `InstanceIds` would fail the whole call; the filter must not.
    await c.resetStats();

    const checks = await checkInstances(deps, [running, unknownInstanceId(3)]);

    expect(checks.get(running)).toEqual({
      outcome: "running",
      instanceId: running,
      state: "running",
    });
    expect(checks.get(unknownInstanceId(3))?.outcome).toBe("stopped");
    expect(await describeCalls()).toBe(1);
  });
});

describe("faults on DescribeInstances are transient, never stopped", () => {
  const faultCases: {
    name: string;
    fault: Omit<FaultSpec, "service" | "action">;
    settings: { maxAttempts: number; requestTimeoutMs?: number };
    code: string | RegExp;
    calls: number;
  }[] = [
    {
      name: "RequestLimitExceeded (503) outlasting the SDK's 3 attempts",
      fault: { error: "RequestLimitExceeded", httpStatus: 503 },
      settings: { maxAttempts: 3 },
      code: "RequestLimitExceeded",
      calls: 3,
    },
    {
      name: "InternalError (500) outlasting the SDK's 3 attempts",
      fault: { error: "InternalError" },
      settings: { maxAttempts: 3 },
      code: "InternalError",
      calls: 3,
    },
    {
      name: "a hung call, cut by the request timeout",
      fault: { hang: true },
      settings: { maxAttempts: 2, requestTimeoutMs: 200 },
      code: "TimeoutError",
      calls: 2,
    },
    {
      name: "a malformed reply",
      fault: { malformed: true },
      settings: { maxAttempts: 1 },
      code: /.+/,
      calls: 1,
    },
    {
      name: "UnauthorizedOperation (403), which the SDK does not retry",
      fault: { error: "UnauthorizedOperation" },
      settings: { maxAttempts: 3 },
      code: "UnauthorizedOperation",
      calls: 1,
    },
    {
      name: "AuthFailure (401)",
      fault: { error: "AuthFailure", httpStatus: 401 },
      settings: { maxAttempts: 3 },
      code: "AuthFailure",
      calls: 1,
    },
  ];

  it.each(faultCases)("$name", async ({ fault, settings, code, calls }) => {
    // Prepare: a running instance and one that is gone, so neither answer can be "guessed".
    const faulty = c.deps({ env, ...settings });
    const gone = unknownInstanceId(4);
    await c.fault({ service: "ec2", action: "DescribeInstances", ...fault });
    await c.resetStats();

    // Act
    const checks = await checkInstances(faulty, [running, gone], {
      launchedAt: new Map([[gone, ago(3_600)]]),
    });

    // Assess
    for (const id of [running, gone]) {
      const check = checks.get(id);
      expect(check?.outcome).toBe("transient");
      if (check?.outcome !== "transient") throw new Error("unreachable");
      expect(check.error.code).toMatch(code);
      expect(check.error.message.length).toBeGreaterThan(0);
    }
    expect(await describeCalls()).toBe(calls);
  });

  it("a malformed reply names a parse error", async () => {
    await c.fault({ service: "ec2", action: "DescribeInstances", malformed: true });

    const check = await checkInstance(c.deps({ env, maxAttempts: 1 }), running, ago(3_600));

    expect(check.outcome).toBe("transient");
    expect(check.outcome === "transient" && check.error.message).toMatch(/parse|XML/i);
  });

  it("latency alone changes nothing: the answer is still correct", async () => {
    // Prepare
    await c.fault({ service: "ec2", action: "DescribeInstances", latencyMs: 300 });
    const gone = unknownInstanceId(5);

    // Act
    const started = Date.now();
    const checks = await checkInstances(deps, [running, gone]);
    const tookMs = Date.now() - started;

    // Assess
    expect(checks.get(running)).toEqual({
      outcome: "running",
      instanceId: running,
      state: "running",
    });
    expect(checks.get(gone)).toEqual({ outcome: "stopped", instanceId: gone, state: "not-found" });
    expect(tookMs).toBeGreaterThanOrEqual(290);
  });

  it("a throttle the SDK's retries get past yields the true answer", async () => {
    await c.fault({
      service: "ec2",
      action: "DescribeInstances",
      error: "RequestLimitExceeded",
      times: 2,
    });
    await c.resetStats();

    const check = await checkInstance(c.deps({ env, maxAttempts: 3 }), running, ago(10));

    expect(check).toEqual({ outcome: "running", instanceId: running, state: "running" });
    expect(await describeCalls()).toBe(3);
  });
});

describe("batches", () => {
  /** `n` ids: launched ones (some terminated), 5% unknown past grace, 5% unknown within grace. */
  function mix(n: number) {
    const unknownOld = Array.from({ length: Math.floor(n / 20) }, (_, i) =>
      unknownInstanceId(10_000 + i),
    );
    const unknownNew = Array.from({ length: Math.floor(n / 20) }, (_, i) =>
      unknownInstanceId(20_000 + i),
    );
    const known = fleet.slice(0, n - unknownOld.length - unknownNew.length);
    const ids = [...known, ...unknownOld, ...unknownNew];
    const launchedAt = new Map<string, Date | null>([
      ...known.map((id) => [id, ago(10)] as const),
      ...unknownOld.map((id) => [id, ago(GRACE_SECONDS * 2)] as const),
      ...unknownNew.map((id) => [id, ago(1)] as const),
    ]);
    const expected = new Map<string, string>([
      ...known.map((id) => [id, terminated.has(id) ? "stopped" : "running"] as const),
      ...unknownOld.map((id) => [id, "stopped"] as const),
      ...unknownNew.map((id) => [id, "transient"] as const),
    ]);
    return { ids, launchedAt, expected };
  }

  const outcomes = (checks: Map<string, InstanceCheck>) =>
    new Map([...checks].map(([id, check]) => [id, check.outcome]));

  it.each([
    { n: 1, calls: 1 },
    { n: 200, calls: 1 },
    { n: 201, calls: 2 },
    { n: 1_000, calls: 5 },
  ])(
    "checks $n ids with $calls DescribeInstances call(s), one outcome each",
    async ({ n, calls }) => {
      // Prepare
      const { ids, launchedAt, expected } = mix(n);
      expect(ids).toHaveLength(n);
      await c.resetStats();

      // Act
      const started = Date.now();
      const checks = await checkInstances(deps, ids, { launchedAt });
      const tookMs = Date.now() - started;

      // Assess
      expect(await describeCalls()).toBe(Math.ceil(n / MAX_IDS_PER_CALL));
      expect(await describeCalls()).toBe(calls);
      expect(outcomes(checks)).toEqual(expected);
      for (const id of ids.filter((i) => terminated.has(i))) {
        expect(checks.get(id)).toMatchObject({
          outcome: "stopped",
          state: expect.stringMatching(/shutting-down|terminated/),
        });
      }
      expect(tookMs).toBeLessThan(10_000);
    },
  );

  it("never sends a call for no ids", async () => {
    await c.resetStats();

    const checks = await checkInstances(deps, []);

    expect(checks.size).toBe(0);
    expect(await describeCalls()).toBe(0);
  });

  it("checks a repeated id once", async () => {
    await c.resetStats();

    const checks = await checkInstances(deps, [running, running, running]);

    expect([...checks.keys()]).toEqual([running]);
    expect(await describeCalls()).toBe(1);
  });

  it("a fault on one of five calls makes only that call's 200 ids transient", async () => {
    // Prepare
    const { ids, launchedAt, expected } = mix(1_000);
    const chunks = Array.from({ length: 5 }, (_, k) => ids.slice(k * 200, (k + 1) * 200));
    await c.fault({
      service: "ec2",
      action: "DescribeInstances",
      error: "InternalError",
      times: 1,
    });
    await c.resetStats();

    // Act
    const checks = await checkInstances(c.deps({ env, maxAttempts: 1 }), ids, { launchedAt });

    // Assess
    expect(await describeCalls()).toBe(5);
    const faulted = ids.filter((id) => {
      const check = checks.get(id);
      return check?.outcome === "transient" && check.error.code === "InternalError";
    });
    expect(faulted).toHaveLength(200);
    const chunk = chunks.find((ch) => ch[0] === faulted[0]);
    expect(faulted).toEqual(chunk);
    for (const id of ids) {
      if (chunk?.includes(id)) continue;
      expect(checks.get(id)?.outcome).toBe(expected.get(id));
    }
  });
});
