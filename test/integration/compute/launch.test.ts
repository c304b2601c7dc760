import { randomUUID } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { findByClientToken } from "../../../lib/compute/instances.js";
import {
  clientTokenFor,
  consoleOutput,
  type LaunchSpec,
  runInstance,
  terminateInstance,
} from "../../../lib/compute/launch.js";
import {
  buildUserData,
  MAX_USER_DATA_BYTES,
  type UserDataInput,
  UserDataTooLargeError,
} from "../../../lib/compute/user-data.js";
import {
  defaultImageId,
  defaultInstanceProfile,
  defaultSecurityGroupId,
  defaultSubnetId,
} from "../../../lib/localcloud/index.js";
import {
  type ComputeCloud,
  type ComputeDeps,
  startComputeCloud,
  unknownInstanceId,
  waitFor,
} from "./cloud.js";

// Launch, terminate and console against the local cloud's EC2 through the real SDK.

const GRACE_SECONDS = 120;
/** A second subnet the cloud's catalogue learns, so spreading over two subnets can be seen. */
const otherSubnetId = "subnet-0b1c2d3e4f5a60719";
const env = {
  LAUNCH_GRACE_SECONDS: String(GRACE_SECONDS),
  DEPLOYMENT_ID: "launch-test",
  WORKSPACE_AMI: defaultImageId,
  WORKSPACE_SUBNET_IDS: `${defaultSubnetId},${otherSubnetId}`,
  WORKSPACE_SECURITY_GROUP_IDS: defaultSecurityGroupId,
  WORKSPACE_INSTANCE_PROFILE: defaultInstanceProfile,
};

let c: ComputeCloud;
let deps: ComputeDeps;

const spec = (overrides: Partial<LaunchSpec> = {}): LaunchSpec => ({
  workspaceId: randomUUID(),
  generation: 1,
  tier: 1,
  userData: "#!/bin/sh\necho hello from user data\n",
  ...overrides,
});

async function launched(s: LaunchSpec, d: ComputeDeps = deps): Promise<string> {
  const out = await runInstance(d, s);
  if (out.kind !== "launched") throw new Error(`not launched: ${JSON.stringify(out)}`);
  return out.instanceId;
}

const byToken = async (token: string) =>
  (await c.instances()).filter((i) => i.clientToken === token);

const ago = (seconds: number) => new Date(Date.now() - seconds * 1000);

beforeAll(async () => {
  c = await startComputeCloud({ catalogue: { subnetIds: [otherSubnetId] } });
  deps = c.deps({ env });
});

afterAll(async () => {
  await c?.close();
});

afterEach(async () => {
  await c.clearFaults();
});

describe("runInstance", () => {
  it("launches one tagged instance with IMDSv2 required and the tier's type", async () => {
    // Prepare
    const s = spec({ tier: 2 });

    // Act
    const id = await launched(s);

    // Assess
    const view = await c.instance(id);
    expect(view.tags).toEqual({
      "wcp:managed": "true",
      "wcp:deployment": "launch-test",
      "wcp:workspace-id": s.workspaceId,
      "wcp:generation": "1",
      Name: `ws-${s.workspaceId.slice(0, 12)}`,
    });
    expect(view.clientToken).toBe(`${s.workspaceId}:1`);
    expect(view.instanceType).toBe("t3.medium");
    const described = await c
      .clients()
      .ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    const inst = described.Reservations?.[0]?.Instances?.[0];
    expect(inst?.MetadataOptions?.HttpTokens).toBe("required");
    expect(inst?.IamInstanceProfile?.Arn).toMatch(
      new RegExp(`instance-profile/${defaultInstanceProfile}$`),
    );
    expect([defaultSubnetId, otherSubnetId]).toContain(inst?.SubnetId);
    expect(inst?.SecurityGroups?.map((g) => g.GroupId)).toEqual([defaultSecurityGroupId]);
  });

  it("is idempotent: the same ClientToken twice gives the same single instance", async () => {
    // Prepare
    const s = spec();
    await c.resetStats();

    // Act
    const first = await launched(s);
    const second = await launched(s);

    // Assess
    expect(second).toBe(first);
    expect(await byToken(clientTokenFor(s.workspaceId, 1))).toHaveLength(1);
    expect(await c.calls("ec2:RunInstances")).toBe(2);
  });

  it("a new generation is a new ClientToken and a new instance", async () => {
    const s = spec();

    const first = await launched(s);
    const next = await launched({ ...s, generation: 2 });

    expect(next).not.toBe(first);
  });

  it("recovers the instance of a launch whose answer was lost, without a second one", async () => {
    // Prepare: EC2 launches, but the answer arrives after the client stopped waiting.
    const s = spec();
    await c.fault({ service: "ec2", action: "RunInstances", latencyMs: 500, times: 1 });
    const impatient = c.deps({ env, maxAttempts: 1, requestTimeoutMs: 150 });

    // Act
    const lost = await runInstance(impatient, s);
    const token = clientTokenFor(s.workspaceId, s.generation);
    const seen = await waitFor(async () => (await findByClientToken(deps, token)) ?? undefined);
    const redriven = await launched(s);

    // Assess
    expect(lost).toMatchObject({ kind: "transient", error: { code: "TimeoutError" } });
    expect(redriven).toBe(seen.instanceId);
    expect(await byToken(token)).toHaveLength(1);
  });

  it("answers token-spent when the same token comes with other parameters, launching nothing", async () => {
    // Prepare
    const s = spec();
    await launched(s);

    // Act + Assess: tier 3 is another instance type under the same token; so is other user-data
    // (a changed PLATFORM_URL or a rotated ADMIN_TOKEN changes it).
    for (const other of [
      { ...s, tier: 3 },
      { ...s, userData: "#!/bin/sh\necho other\n" },
    ]) {
      expect(await runInstance(deps, other)).toMatchObject({
        kind: "token-spent",
        error: { code: "IdempotentParameterMismatch" },
      });
    }
    expect(await byToken(clientTokenFor(s.workspaceId, 1))).toHaveLength(1);
  });

  it("answers transient for throttling and server faults, launching nothing", async () => {
    // Prepare
    const s = spec();
    await c.fault({ service: "ec2", action: "RunInstances", error: "RequestLimitExceeded" });

    // Act
    const out = await runInstance(c.deps({ env, maxAttempts: 2 }), s);

    // Assess
    expect(out).toMatchObject({ kind: "transient", error: { code: "RequestLimitExceeded" } });
    expect(await byToken(clientTokenFor(s.workspaceId, 1))).toHaveLength(0);
  });

  it("answers rejected for a request EC2 refuses (a malformed AMI id)", async () => {
    const s = spec();

    const out = await runInstance(c.deps({ env: { ...env, WORKSPACE_AMI: "not-an-ami" } }), s);

    expect(out).toMatchObject({ kind: "rejected", error: { code: "InvalidAMIID.Malformed" } });
    expect(await byToken(clientTokenFor(s.workspaceId, 1))).toHaveLength(0);
  });

  it("answers rejected for a tier with no instance type, without calling EC2", async () => {
    await c.resetStats();

    const out = await runInstance(deps, spec({ tier: 9 }));

    expect(out).toMatchObject({ kind: "rejected", error: { code: "UnknownTier" } });
    expect(await c.calls("ec2:RunInstances")).toBe(0);
  });
});

describe("terminateInstance", () => {
  it("terminates, and terminating again still succeeds", async () => {
    // Prepare
    const id = await launched(spec());

    // Act
    const first = await terminateInstance(deps, id, new Date());
    const second = await terminateInstance(deps, id, new Date());

    // Assess
    expect(first).toEqual({ kind: "terminated" });
    expect(second).toEqual({ kind: "terminated" });
    expect(["shutting-down", "terminated"]).toContain((await c.instance(id)).state);
  });

  it("takes an id EC2 does not know as terminated past the launch grace", async () => {
    const id = unknownInstanceId(7);

    expect(await terminateInstance(deps, id, ago(GRACE_SECONDS + 1))).toEqual({
      kind: "terminated",
    });
    expect(await terminateInstance(deps, id, null)).toEqual({ kind: "terminated" });
  });

  it("answers transient for an id EC2 does not know yet inside the launch grace", async () => {
    const out = await terminateInstance(deps, unknownInstanceId(8), ago(5));

    expect(out).toMatchObject({
      kind: "transient",
      error: { code: "InvalidInstanceID.NotFound" },
    });
  });

  it("answers transient when TerminateInstances fails, and the instance keeps running", async () => {
    // Prepare
    const id = await launched(spec());
    await c.fault({ service: "ec2", action: "TerminateInstances", error: "InternalError" });

    // Act
    const out = await terminateInstance(c.deps({ env, maxAttempts: 1 }), id, ago(3_600));

    // Assess
    expect(out).toMatchObject({ kind: "transient", error: { code: "InternalError" } });
    expect(["pending", "running"]).toContain((await c.instance(id)).state);
  });
});

describe("consoleOutput", () => {
  it("returns the decoded console, user-data output included", async () => {
    // Prepare
    const id = await launched(spec({ userData: "#!/bin/sh\necho 'héllo from user data'\n" }));

    // Act
    const out = await waitFor(async () => {
      const o = await consoleOutput(deps, id, null);
      return o.kind === "ok" && o.output.includes("héllo from user data") ? o : undefined;
    });

    // Assess
    expect(out.output).toContain(`instance ${id} booted`);
    expect(out.timestamp).toBeInstanceOf(Date);
  });

  it("classifies failures: transient for a server fault, not transient for a malformed id", async () => {
    await c.fault({ service: "ec2", action: "GetConsoleOutput", error: "InternalError", times: 1 });

    const faulted = await consoleOutput(
      c.deps({ env, maxAttempts: 1 }),
      unknownInstanceId(9),
      null,
    );
    const malformed = await consoleOutput(deps, "i-nope", null);

    expect(faulted).toMatchObject({
      kind: "error",
      transient: true,
      error: { code: "InternalError" },
    });
    expect(malformed).toMatchObject({
      kind: "error",
      transient: false,
      error: { code: "InvalidInstanceID.Malformed" },
    });
  });

  it("says gone for an id EC2 does not know past the launch grace, transient inside it", async () => {
    // Prepare: an id of the right shape that EC2 never issued (as one purged after termination).
    const id = unknownInstanceId(7);
    const longAgo = new Date(Date.now() - 3_600_000);

    // Act
    const old = await consoleOutput(deps, id, longAgo);
    const unknownAge = await consoleOutput(deps, id, null);
    const fresh = await consoleOutput(deps, id, new Date());

    // Assess
    expect(old).toMatchObject({ kind: "gone", error: { code: "InvalidInstanceID.NotFound" } });
    expect(unknownAge.kind).toBe("gone");
    expect(fresh).toMatchObject({
      kind: "error",
      transient: true,
      error: { code: "InvalidInstanceID.NotFound" },
    });
  });
});

describe("user-data", () => {
  const input = (overrides: Partial<UserDataInput> = {}): UserDataInput => ({
    workspaceId: randomUUID(),
    platformUrl: "http://127.0.0.1:8787",
    token: "tok_ABCdef-123",
    image: "ghcr.io/example/runtime:1",
    env: {},
    ...overrides,
  });

  it("writes the env file literally on the instance, quotes and $() included", async () => {
    // Prepare
    const tricky = `it's "quoted" $(touch pwned) \`touch pwned2\` $HOME; rm -rf . # \\ *`;
    const ud = input({ env: { TRICKY: tricky, EMPTY: "", WORKSPACE_ID: "user-cannot-override" } });
    const userData = buildUserData(ud);

    // Act
    const id = await launched(spec({ workspaceId: ud.workspaceId, userData }));
    const dir = (await c.instance(id)).dir;
    const text = await waitFor(async () => {
      const out = await consoleOutput(deps, id, null);
      return out.kind === "ok" && out.output.includes("files prepared")
        ? readFile(join(dir, "workspace.env"), "utf8")
        : undefined;
    });

    // Assess
    expect(text.split("\n")).toEqual([
      `TRICKY=${tricky}`,
      "EMPTY=",
      `WORKSPACE_ID=${ud.workspaceId}`,
      "PLATFORM_URL=http://127.0.0.1:8787",
      "WORKSPACE_TOKEN=tok_ABCdef-123",
      "",
    ]);
    expect((await stat(join(dir, "workspace.env"))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "configs", "plugins"))).isDirectory()).toBe(true);
    expect((await stat(join(dir, "configs", "skills"))).isDirectory()).toBe(true);
    await expect(stat(join(dir, "pwned"))).rejects.toThrow(/ENOENT/);
    await expect(stat(join(dir, "pwned2"))).rejects.toThrow(/ENOENT/);
  });

  it("accepts up to 16 KB, which EC2 launches, and throws UserDataTooLargeError above", async () => {
    // Prepare: the longest env value that still fits (base64 grows in steps of 4 bytes).
    const at = (n: number) => input({ workspaceId: "w", env: { PAD: "x".repeat(n) } });
    const fits = (n: number) => {
      try {
        buildUserData(at(n));
        return true;
      } catch (err) {
        if (err instanceof UserDataTooLargeError) return false;
        throw err;
      }
    };
    let lo = 0;
    let hi = MAX_USER_DATA_BYTES;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (fits(mid)) lo = mid;
      else hi = mid - 1;
    }

    // Act
    const largest = buildUserData(at(lo));
    let thrown: unknown;
    try {
      buildUserData(at(lo + 1));
    } catch (err) {
      thrown = err;
    }

    // Assess
    expect(Buffer.byteLength(largest)).toBeLessThanOrEqual(MAX_USER_DATA_BYTES);
    expect(Buffer.byteLength(largest)).toBeGreaterThan(MAX_USER_DATA_BYTES - 4);
    expect(thrown).toBeInstanceOf(UserDataTooLargeError);
    expect((thrown as UserDataTooLargeError).bytes).toBeGreaterThan(MAX_USER_DATA_BYTES);
    // EC2's own limit is the same 16 KB: the largest script we build is launched.
    expect(await runInstance(deps, spec({ userData: largest }))).toMatchObject({
      kind: "launched",
    });
  });

  it("counts bytes, not characters", () => {
    // 5,000 three-byte characters are 15,000 bytes, 20,000 in base64; 5,000 ASCII ones fit.
    expect(() => buildUserData(input({ env: { U: "€".repeat(5_000) } }))).toThrow(
      UserDataTooLargeError,
    );
    expect(() => buildUserData(input({ env: { A: "a".repeat(5_000) } }))).not.toThrow();
  });

  it("launches an env value holding {{ }}, which only SSM documents would resolve", async () => {
    // Prepare
    const template = "Hello {{ .Name }}, {{ssm:/not/resolved}}";
    const ud = input({ env: { TEMPLATE: template } });

    // Act
    const id = await launched(spec({ workspaceId: ud.workspaceId, userData: buildUserData(ud) }));
    const dir = (await c.instance(id)).dir;
    const text = await waitFor(async () => {
      const out = await consoleOutput(deps, id, null);
      return out.kind === "ok" && out.output.includes("files prepared")
        ? readFile(join(dir, "workspace.env"), "utf8")
        : undefined;
    });

    // Assess
    expect(text.split("\n")[0]).toBe(`TEMPLATE=${template}`);
  });
});
