import { DescribeInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createAwsClients } from "../../../lib/compute/clients.js";
import type { Log } from "../../../lib/deps.js";
import { type ComputeCloud, startComputeCloud } from "./cloud.js";

// The DEBUG line of every AWS call says how it ended, through the real SDK against the local
// cloud: ok, transient (throttled), refused (the identity), rejected (the request), unknown (no
// answer that could be read) — after the SDK's retries, with the attempts it took, and never the
// call's input.

let t: ComputeCloud;
let lines: Record<string, unknown>[];
const log: Log = {
  debug: (message, ...extra) => lines.push({ message, ...Object.assign({}, ...extra) }),
  info() {},
  warn() {},
  error() {},
};
const ec2 = () =>
  createAwsClients({
    region: "us-east-1",
    endpoint: t.url,
    credentials: { accessKeyId: "t", secretAccessKey: "t" },
    maxAttempts: 2,
    log,
  }).ec2;

beforeAll(async () => {
  t = await startComputeCloud();
});
afterAll(async () => t.close());
beforeEach(async () => {
  lines = [];
  await t.clearFaults();
});

const describeOne = () =>
  ec2()
    .send(
      new DescribeInstancesCommand({
        Filters: [{ Name: "instance-id", Values: ["i-0123456789abcdef0"] }],
      }),
    )
    .catch(() => undefined);

describe("AWS call outcome lines", () => {
  it("ok, with the service, the operation and the attempts", async () => {
    await describeOne();
    expect(lines).toEqual([
      expect.objectContaining({
        message: "aws call",
        awsService: "EC2",
        operation: "DescribeInstancesCommand",
        outcome: "ok",
        httpStatus: 200,
        attempts: 1,
      }),
    ]);
  });

  it("transient for throttling, once, after the SDK's retries", async () => {
    await t.fault({
      service: "ec2",
      action: "DescribeInstances",
      error: "RequestLimitExceeded",
      httpStatus: 503,
    });
    await describeOne();
    expect(lines).toEqual([
      expect.objectContaining({ outcome: "transient", code: "RequestLimitExceeded", attempts: 2 }),
    ]);
  });

  it("refused for the deployment's identity, rejected for a bad request", async () => {
    await t.fault({
      service: "ec2",
      action: "DescribeInstances",
      error: "UnauthorizedOperation",
      httpStatus: 403,
      times: 1,
    });
    await describeOne();
    await ec2()
      .send(new TerminateInstancesCommand({ InstanceIds: ["i-0123456789abcdef0"] }))
      .catch(() => undefined);
    expect(lines.map((l) => [l.operation, l.outcome, l.code])).toEqual([
      ["DescribeInstancesCommand", "refused", "UnauthorizedOperation"],
      ["TerminateInstancesCommand", "rejected", "InvalidInstanceID.NotFound"],
    ]);
  });

  it("unknown when no answer could be read, and never the call's input", async () => {
    await t.fault({ service: "ec2", action: "DescribeInstances", malformed: true });
    await describeOne();
    expect(lines.map((l) => l.outcome)).toEqual(["unknown"]);
    expect(JSON.stringify(lines)).not.toContain("i-0123456789abcdef0");
  });
});
