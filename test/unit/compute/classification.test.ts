import {
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  EC2Client,
  type InstanceStateName,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { S3Client } from "@aws-sdk/client-s3";
import { SSMClient } from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { describeAwsError, isTransientAwsError } from "../../../lib/compute/errors.js";
import { checkInstance, checkInstances } from "../../../lib/compute/instances.js";
import { runInstance, terminateInstance } from "../../../lib/compute/launch.js";
import type { Clock, Deps } from "../../../lib/deps.js";
import { testConfig } from "../../support/context.js";
import { unitDeps } from "../../support/unit-deps.js";

// The classification table of SPEC §6 over a mocked EC2Client: which SDK errors and replies make
// the running check say running / stopped / transient, and which launch errors are transient.

const ec2 = mockClient(EC2Client);
const NOW = new Date("2030-01-01T00:00:00Z");
const clock: Clock = { now: () => NOW };
const GRACE_SECONDS = 300;

function deps(): Deps {
  const region = "us-east-1";
  const credentials = { accessKeyId: "t", secretAccessKey: "t" };
  return unitDeps({
    aws: {
      ec2: new EC2Client({ region, credentials }),
      ssm: new SSMClient({ region, credentials }),
      ssmNoRetry: new SSMClient({ region, credentials, maxAttempts: 1 }),
      s3: new S3Client({ region, credentials }),
    },
    clock,
    config: testConfig({ LAUNCH_GRACE_SECONDS: String(GRACE_SECONDS) }),
  });
}

/** An error shaped like the SDK's: `name` is the service code, `$fault` and `$metadata` set. */
function awsError(
  code: string,
  httpStatusCode: number | undefined,
  fault: "client" | "server" | undefined,
  message = `${code} happened`,
): Error {
  return Object.assign(new Error(message), {
    name: code,
    ...(fault !== undefined && { $fault: fault }),
    $metadata: httpStatusCode === undefined ? { attempts: 3 } : { httpStatusCode, attempts: 3 },
  });
}

/** A Node network error as the SDK passes it on: no HTTP answer, `code` set. */
function networkError(code: string, name = "Error"): Error {
  return Object.assign(new Error(`connect ${code} 10.0.0.1:443`), {
    name,
    code,
    $metadata: { attempts: 3, totalRetryDelay: 300 },
  });
}

/** The SDK's reply when the XML cannot be parsed: a plain Error on a 200. */
const parseError = () =>
  Object.assign(new Error("@aws-sdk XML parse error: missing closing tag </requestId>."), {
    $metadata: { httpStatusCode: 200 },
  });

const reply = (
  ...instances: { id: string; state?: InstanceStateName | string }[]
): DescribeInstancesCommandOutput => ({
  $metadata: {},
  Reservations: [
    {
      Instances: instances.map((i) => ({
        InstanceId: i.id,
        ...(i.state !== undefined && { State: { Name: i.state as InstanceStateName } }),
      })),
    },
  ],
});

const ID = "i-0123456789abcdef0";
const ago = (seconds: number) => new Date(NOW.getTime() - seconds * 1000);

afterEach(() => {
  ec2.reset();
});

afterAll(() => {
  ec2.restore();
});

describe("the running check: failed calls are transient, never stopped", () => {
  const failures: [string, () => unknown][] = [
    ["RequestLimitExceeded (503)", () => awsError("RequestLimitExceeded", 503, "server")],
    ["InternalError (500)", () => awsError("InternalError", 500, "server")],
    ["Unavailable (503)", () => awsError("Unavailable", 503, "server")],
    [
      "TimeoutError",
      () => Object.assign(networkError("ETIMEDOUT", "TimeoutError"), { message: "timed out" }),
    ],
    ["ECONNRESET", () => networkError("ECONNRESET")],
    ["ECONNREFUSED", () => networkError("ECONNREFUSED")],
    ["UnauthorizedOperation (403)", () => awsError("UnauthorizedOperation", 403, "client")],
    ["AuthFailure (401)", () => awsError("AuthFailure", 401, "client")],
    [
      "InvalidInstanceID.NotFound (400)",
      () => awsError("InvalidInstanceID.NotFound", 400, "client"),
    ],
    ["an unparseable reply", parseError],
  ];

  it.each(failures)("%s", async (_name, make) => {
    // Prepare
    const err = make();
    ec2.on(DescribeInstancesCommand).rejects(err as Error);

    // Act: launched long ago, so only the error can keep it from being "stopped".
    const check = await checkInstance(deps(), ID, ago(GRACE_SECONDS * 10));

    // Assess
    expect(check).toEqual({
      outcome: "transient",
      instanceId: ID,
      error: describeAwsError(err),
    });
    expect(check.outcome === "transient" && check.error.code).toBe((err as Error).name);
  });

  it("a rejection that is not an Error", async () => {
    ec2.on(DescribeInstancesCommand).callsFake(async () => {
      throw "socket hang up";
    });

    const check = await checkInstance(deps(), ID, null);

    expect(check).toMatchObject({ outcome: "transient", error: { message: "socket hang up" } });
  });

  it("a reply without Reservations", async () => {
    ec2.on(DescribeInstancesCommand).resolves({ $metadata: {} });

    const check = await checkInstance(deps(), ID, null);

    expect(check).toMatchObject({ outcome: "transient", error: { code: "MalformedReply" } });
  });

  it("an instance without a state", async () => {
    ec2.on(DescribeInstancesCommand).resolves(reply({ id: ID }));

    const check = await checkInstance(deps(), ID, null);

    expect(check).toMatchObject({ outcome: "transient", error: { code: "MalformedReply" } });
  });

  it("a failing second page makes the whole call transient", async () => {
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce({ ...reply({ id: ID, state: "running" }), NextToken: "page-2" })
      .rejectsOnce(awsError("RequestLimitExceeded", 503, "server"));

    const check = await checkInstance(deps(), ID, null);

    expect(check).toMatchObject({ outcome: "transient", error: { code: "RequestLimitExceeded" } });
  });
});

describe("the running check: states", () => {
  const states: [string, "running" | "stopped" | "transient"][] = [
    ["pending", "running"],
    ["running", "running"],
    ["stopping", "stopped"],
    ["stopped", "stopped"],
    ["shutting-down", "stopped"],
    ["terminated", "stopped"],
    ["rebooting", "transient"],
    ["unknown", "transient"],
  ];

  it.each(states)("%s → %s", async (state, outcome) => {
    ec2.on(DescribeInstancesCommand).resolves(reply({ id: ID, state }));

    const check = await checkInstance(deps(), ID, ago(1));

    expect(check.outcome).toBe(outcome);
    if (check.outcome !== "transient") expect(check.state).toBe(state);
  });

  it("absent: transient inside the launch grace, stopped not-found past it or when unknown", async () => {
    ec2.on(DescribeInstancesCommand).resolves({ $metadata: {}, Reservations: [] });
    const d = deps();

    const fresh = await checkInstance(d, ID, ago(GRACE_SECONDS - 1));
    const old = await checkInstance(d, ID, ago(GRACE_SECONDS));
    const unknown = await checkInstance(d, ID, null);

    expect(fresh).toMatchObject({ outcome: "transient", error: { code: "NotYetVisible" } });
    expect(old).toEqual({ outcome: "stopped", instanceId: ID, state: "not-found" });
    expect(unknown).toEqual({ outcome: "stopped", instanceId: ID, state: "not-found" });
  });

  it("ignores instances the reply names but nobody asked about", async () => {
    ec2
      .on(DescribeInstancesCommand)
      .resolves(reply({ id: "i-0ffffffffffffffff", state: "running" }));

    const checks = await checkInstances(deps(), [ID]);

    expect([...checks.keys()]).toEqual([ID]);
    expect(checks.get(ID)).toEqual({ outcome: "stopped", instanceId: ID, state: "not-found" });
  });
});

describe("the running check: calls", () => {
  const ids = (n: number) =>
    Array.from({ length: n }, (_, i) => `i-${i.toString(16).padStart(17, "0")}`);

  it("filters by instance-id, at most 200 values a call, never InstanceIds", async () => {
    ec2.on(DescribeInstancesCommand).resolves({ $metadata: {}, Reservations: [] });

    await checkInstances(deps(), ids(401));

    const calls = ec2.commandCalls(DescribeInstancesCommand);
    expect(calls).toHaveLength(3);
    const sizes = calls.map((call) => {
      const input = call.args[0].input;
      expect(input.InstanceIds).toBeUndefined();
      expect(input.Filters?.map((f) => f.Name)).toEqual(["instance-id"]);
      return input.Filters?.[0]?.Values?.length;
    });
    expect(sizes.sort()).toEqual([1, 200, 200]);
  });

  it("sends nothing for no ids", async () => {
    const checks = await checkInstances(deps(), []);

    expect(checks.size).toBe(0);
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(0);
  });

  it("follows NextToken to the page that holds the instance", async () => {
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce({ $metadata: {}, Reservations: [], NextToken: "page-2" })
      .resolvesOnce(reply({ id: ID, state: "running" }));

    const check = await checkInstance(deps(), ID, null);

    expect(check).toEqual({ outcome: "running", instanceId: ID, state: "running" });
    const calls = ec2.commandCalls(DescribeInstancesCommand);
    expect(calls.map((call) => call.args[0].input.NextToken)).toEqual([undefined, "page-2"]);
  });

  it("a failed call makes only its own ids transient", async () => {
    const all = ids(250);
    ec2
      .on(DescribeInstancesCommand)
      .callsFake(async (input: { Filters?: { Values?: string[] }[] }) => {
        const values = input.Filters?.[0]?.Values ?? [];
        if (values.length === 200) throw awsError("InternalError", 500, "server");
        return reply(...values.map((id) => ({ id, state: "running" })));
      });

    const checks = await checkInstances(deps(), all);

    expect(all.slice(0, 200).every((id) => checks.get(id)?.outcome === "transient")).toBe(true);
    expect(all.slice(200).every((id) => checks.get(id)?.outcome === "running")).toBe(true);
  });
});

describe("isTransientAwsError (launch and console classification)", () => {
  const table: [string, unknown, boolean][] = [
    ["RequestLimitExceeded 503", awsError("RequestLimitExceeded", 503, "server"), true],
    ["ThrottlingException 400", awsError("ThrottlingException", 400, "client"), true],
    ["Throttling 400", awsError("Throttling", 400, "client"), true],
    ["SlowDown 503", awsError("SlowDown", 503, "server"), true],
    ["TooManyRequestsException 429", awsError("TooManyRequestsException", 429, "client"), true],
    ["any 429", awsError("SomethingNew", 429, "client"), true],
    ["RequestTimeout 400", awsError("RequestTimeout", 400, "client"), true],
    ["RequestTimeoutException 400", awsError("RequestTimeoutException", 400, "client"), true],
    ["PriorRequestNotComplete 400", awsError("PriorRequestNotComplete", 400, "client"), true],
    ["EC2ThrottledException 400", awsError("EC2ThrottledException", 400, "client"), true],
    ["InternalError 500", awsError("InternalError", 500, "server"), true],
    ["Unavailable 503", awsError("Unavailable", 503, "server"), true],
    ["a 502 without a code", awsError("Error", 502, undefined), true],
    [
      "a retryable modeled error",
      Object.assign(awsError("Busy", 400, "client"), { $retryable: {} }),
      true,
    ],
    ["TimeoutError", networkError("ETIMEDOUT", "TimeoutError"), true],
    ["ECONNRESET", networkError("ECONNRESET"), true],
    ["ECONNREFUSED", networkError("ECONNREFUSED"), true],
    ["EPIPE", networkError("EPIPE"), true],
    ["an unparseable reply", parseError(), true],
    ["a non-Error rejection", "socket hang up", true],
    ["InvalidAMIID.Malformed 400", awsError("InvalidAMIID.Malformed", 400, "client"), false],
    ["InvalidParameterValue 400", awsError("InvalidParameterValue", 400, "client"), false],
    ["UnauthorizedOperation 403", awsError("UnauthorizedOperation", 403, "client"), false],
    ["AuthFailure 401", awsError("AuthFailure", 401, "client"), false],
    [
      "InvalidInstanceID.NotFound 400",
      awsError("InvalidInstanceID.NotFound", 400, "client"),
      false,
    ],
    [
      "IdempotentInstanceTerminated 400",
      awsError("IdempotentInstanceTerminated", 400, "client"),
      false,
    ],
    ["InstanceLimitExceeded 400", awsError("InstanceLimitExceeded", 400, "client"), false],
  ];

  it.each(table.map(([name, err, transient]) => ({ name, err, transient })))(
    "$name → transient: $transient",
    ({ err, transient }) => {
      expect(isTransientAwsError(err)).toBe(transient);
    },
  );
});

describe("launch and terminate over the classification", () => {
  const spec = {
    workspaceId: "3b0c5f2e-8a4f-4d6b-9f7e-2f6d1c0a9b8e",
    generation: 1,
    tier: 1,
    userData: "#!/bin/sh\n",
  };

  it("a throttled RunInstances is transient; a refused one is rejected", async () => {
    ec2
      .on(RunInstancesCommand)
      .rejectsOnce(awsError("RequestLimitExceeded", 503, "server"))
      .rejectsOnce(awsError("InvalidAMIID.Malformed", 400, "client"));

    const first = await runInstance(deps(), spec);
    const second = await runInstance(deps(), spec);

    expect(first).toMatchObject({ kind: "transient", error: { code: "RequestLimitExceeded" } });
    expect(second).toMatchObject({ kind: "rejected", error: { code: "InvalidAMIID.Malformed" } });
  });

  it("sends the ClientToken, tags, IMDSv2 and base64 user-data", async () => {
    ec2.on(RunInstancesCommand).resolves({ $metadata: {}, Instances: [{ InstanceId: ID }] });

    const out = await runInstance(deps(), spec);

    expect(out).toEqual({ kind: "launched", instanceId: ID });
    const input = ec2.commandCalls(RunInstancesCommand)[0]?.args[0].input;
    expect(input?.ClientToken).toBe(`${spec.workspaceId}:1`);
    expect(input?.MetadataOptions?.HttpTokens).toBe("required");
    expect(Buffer.from(input?.UserData ?? "", "base64").toString("utf8")).toBe(spec.userData);
    expect(input?.TagSpecifications?.[0]?.Tags).toEqual([
      { Key: "wcp:managed", Value: "true" },
      { Key: "wcp:deployment", Value: "local" },
      { Key: "wcp:workspace-id", Value: spec.workspaceId },
      { Key: "wcp:generation", Value: "1" },
      { Key: "Name", Value: "ws-3b0c5f2e-8a4" },
    ]);
  });

  it("a reply without an instance is transient, never launched", async () => {
    ec2.on(RunInstancesCommand).resolves({ $metadata: {}, Instances: [] });

    expect(await runInstance(deps(), spec)).toMatchObject({
      kind: "transient",
      error: { code: "MalformedReply" },
    });
  });

  it("a ClientToken EC2 will not replay is token-spent, for either reason", async () => {
    ec2
      .on(RunInstancesCommand)
      .rejectsOnce(awsError("IdempotentParameterMismatch", 400, "client"))
      .rejectsOnce(awsError("IdempotentInstanceTerminated", 400, "client"));

    expect(await runInstance(deps(), spec)).toMatchObject({
      kind: "token-spent",
      error: { code: "IdempotentParameterMismatch" },
    });
    expect(await runInstance(deps(), spec)).toMatchObject({
      kind: "token-spent",
      error: { code: "IdempotentInstanceTerminated" },
    });
  });

  it("a refused permission is transient and marked misconfigured, never rejected", async () => {
    ec2
      .on(RunInstancesCommand)
      .rejectsOnce(awsError("UnauthorizedOperation", 403, "client"))
      .rejectsOnce(awsError("AuthFailure", 401, "client"));

    for (const code of ["UnauthorizedOperation", "AuthFailure"]) {
      expect(await runInstance(deps(), spec)).toMatchObject({
        kind: "transient",
        error: { code, misconfigured: true },
      });
    }
  });

  it("terminating an unknown id: terminated past the grace, transient inside it", async () => {
    ec2
      .on(TerminateInstancesCommand)
      .rejects(awsError("InvalidInstanceID.NotFound", 400, "client"));

    expect(await terminateInstance(deps(), ID, ago(GRACE_SECONDS))).toEqual({ kind: "terminated" });
    expect(await terminateInstance(deps(), ID, null)).toEqual({ kind: "terminated" });
    expect(await terminateInstance(deps(), ID, ago(GRACE_SECONDS - 1))).toMatchObject({
      kind: "transient",
    });
  });
});
