import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { failure, launch, startTestCloud, type TestCloud } from "./harness.js";

/** The wire edges the SDK never exercises: raw requests must get an answer, never a crash. */

let t: TestCloud;

beforeAll(async () => {
  t = await startTestCloud({ buckets: ["some-bucket", "blocked-bucket", "open-bucket"] });
});

afterAll(async () => {
  await t.close();
});

const form = (body: string) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body,
});

const ssmCall = (action: string, body: string) => ({
  method: "POST",
  headers: { "content-type": "application/x-amz-json-1.1", "x-amz-target": `AmazonSSM.${action}` },
  body,
});

describe("EC2 wire format", () => {
  it("answers with the 2016-11-15 namespace and a requestId", async () => {
    const res = await fetch(t.cloud.url, form("Action=DescribeInstances&Version=2016-11-15"));
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(text).toContain(
      '<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">',
    );
    expect(text).toMatch(/<requestId>[0-9a-f-]{36}<\/requestId>/);
  });

  it("renders errors as <Response><Errors><Error> with a RequestID", async () => {
    const res = await fetch(t.cloud.url, form("Action=Frobnicate&Version=2016-11-15"));
    const text = await res.text();
    expect(res.status).toBe(400);
    expect(text).toMatch(
      /<Response><Errors><Error><Code>InvalidAction<\/Code><Message>[^<]+<\/Message><\/Error><\/Errors><RequestID>[0-9a-f-]{36}<\/RequestID><\/Response>/,
    );
  });

  it("answers MissingParameter for a RunInstances without an image", async () => {
    const res = await fetch(
      t.cloud.url,
      form("Action=RunInstances&Version=2016-11-15&MinCount=1&MaxCount=1"),
    );
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("<Code>MissingParameter</Code>");
  });

  it("answers 413 for a body over 1 MiB", async () => {
    const res = await fetch(
      t.cloud.url,
      form(`Action=DescribeInstances&Pad=${"x".repeat(1024 * 1024)}`),
    );
    expect(res.status).toBe(413);
  });
});

describe("SSM wire format", () => {
  it("answers SerializationException for a body that is not JSON", async () => {
    const res = await fetch(t.cloud.url, ssmCall("SendCommand", "{not json"));
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ __type: "SerializationException" });
  });

  it("answers ValidationException for wrongly typed members", async () => {
    const res = await fetch(
      t.cloud.url,
      ssmCall("SendCommand", JSON.stringify({ DocumentName: 7 })),
    );
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ __type: "ValidationException" });
  });

  it("answers UnknownOperationException for an unknown target", async () => {
    const res = await fetch(t.cloud.url, ssmCall("Frobnicate", "{}"));
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ __type: "UnknownOperationException" });
  });
});

describe("S3 wire format and the control listing", () => {
  it("answers NotImplemented for an unsupported S3 request and InvalidBucketName for a bad bucket", async () => {
    const listUrl = await getSignedUrl(t.s3, new ListObjectsV2Command({ Bucket: "some-bucket" }), {
      expiresIn: 60,
    });
    const list = await fetch(listUrl);
    expect(list.status).toBe(501);
    expect(await list.text()).toContain("<Code>NotImplemented</Code>");
    const bad = await fetch(`${t.cloud.url}/Bad_Bucket/key`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("<Code>InvalidBucketName</Code>");
  });

  it("turns an internal failure into a 500 InternalError and keeps serving", async () => {
    // A directory where the object's metadata file should go makes the write fail inside the server.
    const metaName = `${createHash("sha256").update("k").digest("hex")}.json`;
    await mkdir(join(t.dir, "s3", "blocked-bucket", metaName), { recursive: true });
    const err = await failure(
      t.s3.send(new PutObjectCommand({ Bucket: "blocked-bucket", Key: "k", Body: "x" })),
    );
    expect(err.name).toBe("InternalError");
    expect(err.$metadata?.httpStatusCode).toBe(500);
    const ok = await t.s3.send(
      new PutObjectCommand({ Bucket: "open-bucket", Key: "k", Body: "x" }),
    );
    expect(ok.ETag).toBeTruthy();
  });

  it("lists instances with id, state, tags, dir, client token and ping status", async () => {
    const id = await launch(t, {
      ClientToken: "listing",
      TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "k", Value: "v" }] }],
    });
    const res = await t.control<{ instances: Record<string, unknown>[] }>("GET", "/instances");
    const entry = res.json.instances.find((i) => i.id === id);
    expect(entry).toMatchObject({
      id,
      tags: { k: "v" },
      clientToken: "listing",
      dir: `${t.dir}/instances/${id}`,
    });
    expect(["pending", "running"]).toContain(entry?.state);
    expect(typeof entry?.launchTime).toBe("string");
    expect(entry).toHaveProperty("ssmPingStatus");
  });

  it("still serves the SDK after all the abuse above", async () => {
    const out = await t.ec2.send(new DescribeInstancesCommand({}));
    expect(Array.isArray(out.Reservations)).toBe(true);
  });
});
