import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { DescribeInstanceInformationCommand, SSMClient } from "@aws-sdk/client-ssm";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { defaultImageId } from "../../../lib/localcloud/index.js";
import { clientConfig, failure, startTestCloud, type TestCloud } from "./harness.js";

let t: TestCloud;
/** Clients that do not retry, to see each fault exactly once. */
let ec2Once: EC2Client;
let ssmOnce: SSMClient;
let s3Once: S3Client;

beforeAll(async () => {
  t = await startTestCloud({ buckets: ["faulty"] });
  const once = { ...clientConfig(t.cloud), maxAttempts: 1 };
  ec2Once = new EC2Client(once);
  ssmOnce = new SSMClient(once);
  s3Once = new S3Client({ ...once, forcePathStyle: true });
});

afterEach(async () => {
  await t.control("DELETE", "/faults");
  await t.control("POST", "/stats/reset");
});

afterAll(async () => {
  ec2Once.destroy();
  ssmOnce.destroy();
  s3Once.destroy();
  await t.close();
});

async function fault(spec: Record<string, unknown>): Promise<string> {
  const res = await t.control<{ id: string }>("POST", "/faults", spec);
  expect(res.status).toBe(201);
  return res.json.id;
}

async function calls(): Promise<Record<string, number>> {
  return (await t.control<{ calls: Record<string, number> }>("GET", "/stats")).json.calls;
}

const describeAll = () =>
  new DescribeInstancesCommand({ Filters: [{ Name: "tag:none", Values: ["x"] }] });

describe("SDK retries seen through stats", () => {
  it("retries a RequestLimitExceeded (503) once and succeeds: two calls counted", async () => {
    await fault({
      service: "ec2",
      action: "DescribeInstances",
      error: "RequestLimitExceeded",
      times: 1,
    });

    const out = await t.ec2.send(describeAll());

    expect(out.Reservations).toEqual([]);
    expect(out.$metadata.attempts).toBe(2);
    expect((await calls())["ec2:DescribeInstances"]).toBe(2);
  });

  it("does not retry InvalidInstanceID.NotFound: one call counted", async () => {
    const err = await failure(
      t.ec2.send(new DescribeInstancesCommand({ InstanceIds: ["i-0000000000000dead"] })),
    );
    expect(err.name).toBe("InvalidInstanceID.NotFound");
    expect((await calls())["ec2:DescribeInstances"]).toBe(1);
  });

  it("retries SSM's ThrottlingException (400) and succeeds", async () => {
    await fault({
      service: "ssm",
      action: "DescribeInstanceInformation",
      error: "ThrottlingException",
      times: 1,
    });

    const out = await t.ssm.send(new DescribeInstanceInformationCommand({}));

    expect(out.InstanceInformationList).toEqual([]);
    expect((await calls())["ssm:DescribeInstanceInformation"]).toBe(2);
  });

  it("gives up after maxAttempts when the fault keeps firing", async () => {
    await fault({ service: "ec2", action: "DescribeInstances", error: "RequestLimitExceeded" });

    const err = await failure(t.ec2.send(describeAll()));

    expect(err.name).toBe("RequestLimitExceeded");
    expect(err.$metadata?.httpStatusCode).toBe(503);
    expect((await calls())["ec2:DescribeInstances"]).toBe(3);
  }, 15_000);
});

describe("fault kinds", () => {
  it("answers the given error code and status in each service's shape", async () => {
    await fault({
      service: "ec2",
      action: "DescribeInstances",
      error: "UnauthorizedOperation",
      httpStatus: 403,
      message: "You are not authorized to perform this operation.",
    });
    await fault({ service: "ssm", action: "*", error: "AccessDeniedException", httpStatus: 400 });
    await fault({ service: "s3", action: "GetObject", error: "AccessDenied", httpStatus: 403 });

    const ec2Err = await failure(ec2Once.send(describeAll()));
    const ssmErr = await failure(ssmOnce.send(new DescribeInstanceInformationCommand({})));
    const s3Err = await failure(s3Once.send(new GetObjectCommand({ Bucket: "faulty", Key: "k" })));

    expect(ec2Err.name).toBe("UnauthorizedOperation");
    expect(ec2Err.message).toBe("You are not authorized to perform this operation.");
    expect(ec2Err.$metadata?.httpStatusCode).toBe(403);
    expect(ssmErr.name).toBe("AccessDeniedException");
    expect(ssmErr.$metadata?.httpStatusCode).toBe(400);
    expect(s3Err.name).toBe("AccessDenied");
    expect(s3Err.$metadata?.httpStatusCode).toBe(403);
  });

  it("fires `times` times, then stops", async () => {
    await fault({ service: "ec2", action: "DescribeInstances", error: "InternalError", times: 2 });

    const first = await failure(ec2Once.send(describeAll()));
    const second = await failure(ec2Once.send(describeAll()));
    const third = await ec2Once.send(describeAll());

    expect(first.name).toBe("InternalError");
    expect(first.$metadata?.httpStatusCode).toBe(500);
    expect(first.$fault).toBe("server");
    expect(second.name).toBe("InternalError");
    expect(third.Reservations).toEqual([]);
    expect((await t.control<{ faults: unknown[] }>("GET", "/faults")).json.faults).toEqual([]);
  });

  it("fires with the given probability", async () => {
    await fault({
      service: "ec2",
      action: "DescribeInstances",
      error: "InternalError",
      probability: 0,
    });
    for (let i = 0; i < 10; i++)
      expect((await ec2Once.send(describeAll())).Reservations).toEqual([]);
    await t.control("DELETE", "/faults");

    await fault({
      service: "ec2",
      action: "DescribeInstances",
      error: "InternalError",
      probability: 0.5,
    });
    let failed = 0;
    for (let i = 0; i < 60; i++) {
      try {
        await ec2Once.send(describeAll());
      } catch {
        failed++;
      }
    }
    // Binomial(60, 0.5): outside 10..50 has a probability below 1e-7.
    expect(failed).toBeGreaterThan(10);
    expect(failed).toBeLessThan(50);
  });

  it("adds latency and then answers normally", async () => {
    await fault({ service: "ec2", action: "DescribeInstances", latencyMs: 300 });
    const started = Date.now();

    const out = await ec2Once.send(describeAll());

    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(out.Reservations).toEqual([]);
  });

  it("hangs until the client's request timeout gives up", async () => {
    await fault({ service: "ec2", action: "DescribeInstances", hang: true });
    const impatient = new EC2Client({
      ...clientConfig(t.cloud),
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler({
        requestTimeout: 300,
        connectionTimeout: 300,
        throwOnRequestTimeout: true,
      }),
    });
    const started = Date.now();

    const err = await failure(impatient.send(describeAll()));

    impatient.destroy();
    expect(err.name).toBe("TimeoutError");
    expect(Date.now() - started).toBeLessThan(3_000);
    expect((await calls())["ec2:DescribeInstances"]).toBe(1);
  });

  it("answers 200 with a body the SDK cannot parse", async () => {
    await fault({ service: "ec2", action: "DescribeInstances", malformed: true });
    await fault({ service: "ssm", action: "DescribeInstanceInformation", malformed: true });
    await fault({ service: "s3", action: "GetObject", malformed: true });

    const ec2Err = await failure(ec2Once.send(describeAll()));
    const ssmErr = await failure(ssmOnce.send(new DescribeInstanceInformationCommand({})));
    const s3Err = await failure(s3Once.send(new GetObjectCommand({ Bucket: "faulty", Key: "k" })));

    // Not service errors: the responses never parsed far enough to carry a code.
    expect(ec2Err.message).toContain("XML parse error");
    expect(ec2Err.$metadata?.httpStatusCode).toBe(200);
    expect(ssmErr.name).toBe("SyntaxError");
    expect(ssmErr.$metadata?.httpStatusCode).toBe(200);
    expect(s3Err.message).toContain("Parse Error");
  });

  it("changes no state when a fault answers instead of the action", async () => {
    await fault({
      service: "ec2",
      action: "RunInstances",
      error: "InsufficientInstanceCapacity",
      httpStatus: 500,
    });
    await fault({ service: "s3", action: "PutObject", error: "SlowDown" });

    const runErr = await failure(
      ec2Once.send(
        new RunInstancesCommand({
          ImageId: defaultImageId,
          MinCount: 1,
          MaxCount: 1,
          TagSpecifications: [
            { ResourceType: "instance", Tags: [{ Key: "faulted", Value: "yes" }] },
          ],
        }),
      ),
    );
    const putErr = await failure(
      s3Once.send(new PutObjectCommand({ Bucket: "faulty", Key: "put", Body: "x" })),
    );
    await t.control("DELETE", "/faults");

    expect(runErr.name).toBe("InsufficientInstanceCapacity");
    expect(putErr.name).toBe("SlowDown");
    expect(putErr.$metadata?.httpStatusCode).toBe(503);
    const out = await t.ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: "tag:faulted", Values: ["yes"] }] }),
    );
    expect(out.Reservations).toEqual([]);
    const get = await failure(t.s3.send(new GetObjectCommand({ Bucket: "faulty", Key: "put" })));
    expect(get.name).toBe("NoSuchKey");
  });

  it("matches every action of a service with '*' and leaves other services alone", async () => {
    await fault({ service: "ssm", action: "*", error: "InternalServerError" });

    const ssmErr = await failure(ssmOnce.send(new DescribeInstanceInformationCommand({})));
    const ec2Ok = await ec2Once.send(describeAll());

    expect(ssmErr.name).toBe("InternalServerError");
    expect(ec2Ok.Reservations).toEqual([]);
  });
});

describe("control API", () => {
  it("rejects an invalid fault", async () => {
    const res = await t.control("POST", "/faults", { service: "dynamodb", action: "*" });
    expect(res.status).toBe(400);
  });

  it("counts calls per service:Action and resets", async () => {
    await t.ec2.send(describeAll());
    await t.ssm.send(new DescribeInstanceInformationCommand({}));
    await failure(t.s3.send(new GetObjectCommand({ Bucket: "faulty", Key: "missing" })));

    expect(await calls()).toEqual({
      "ec2:DescribeInstances": 1,
      "ssm:DescribeInstanceInformation": 1,
      "s3:GetObject": 1,
    });
    await t.control("POST", "/stats/reset");
    expect(await calls()).toEqual({});
  });

  it("answers 404 for an unknown route", async () => {
    expect((await t.control("GET", "/nothing-here")).status).toBe(404);
  });
});
