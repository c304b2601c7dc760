import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalCloud } from "../../../lib/localcloud/index.js";
import { failure, fastDelays, knownKeys, startTestCloud, type TestCloud, wrap } from "./harness.js";

// A bucket exists only once CreateBucket made it or the `buckets` option listed it; every object
// call on any other bucket answers NoSuchBucket (404), as S3 does
// (AmazonS3/latest/API/ErrorResponses.html).

let t: TestCloud;

beforeAll(async () => {
  t = await startTestCloud({ buckets: ["listed-bucket"] });
});

afterAll(async () => {
  await t.close();
});

describe("buckets", () => {
  it("answers NoSuchBucket for every object call on a bucket nobody created", async () => {
    const calls = [
      t.s3.send(new PutObjectCommand({ Bucket: "never-made", Key: "k", Body: "x" })),
      t.s3.send(new GetObjectCommand({ Bucket: "never-made", Key: "k" })),
      t.s3.send(new DeleteObjectCommand({ Bucket: "never-made", Key: "k" })),
    ];

    const errors = await Promise.all(calls.map((c) => failure(c)));
    const head = await failure(
      t.s3.send(new HeadObjectCommand({ Bucket: "never-made", Key: "k" })),
    );
    const headBucket = await failure(t.s3.send(new HeadBucketCommand({ Bucket: "never-made" })));

    for (const err of errors) {
      expect(err.name).toBe("NoSuchBucket");
      expect(err.message).toBe("The specified bucket does not exist");
      expect(err.$metadata?.httpStatusCode).toBe(404);
    }
    // HEAD answers carry no body, so the SDK only sees the 404.
    expect(head.$metadata?.httpStatusCode).toBe(404);
    expect(headBucket.$metadata?.httpStatusCode).toBe(404);
  });

  it("serves a bucket made by CreateBucket, and answers 200 when it is made again (us-east-1)", async () => {
    await t.s3.send(new CreateBucketCommand({ Bucket: "made-here" }));
    const again = await t.s3.send(new CreateBucketCommand({ Bucket: "made-here" }));
    await t.s3.send(new PutObjectCommand({ Bucket: "made-here", Key: "k", Body: "v" }));

    const got = await t.s3.send(new GetObjectCommand({ Bucket: "made-here", Key: "k" }));

    expect(again.$metadata.httpStatusCode).toBe(200);
    expect(await got.Body?.transformToString()).toBe("v");
    expect(
      (await t.s3.send(new HeadBucketCommand({ Bucket: "made-here" }))).$metadata.httpStatusCode,
    ).toBe(200);
  });

  it("serves a bucket listed in the buckets option without CreateBucket", async () => {
    await t.s3.send(new PutObjectCommand({ Bucket: "listed-bucket", Key: "k", Body: "v" }));

    const got = await t.s3.send(new GetObjectCommand({ Bucket: "listed-bucket", Key: "k" }));

    expect(await got.Body?.transformToString()).toBe("v");
  });

  it("keeps created and listed buckets, and their objects, across a restart without the option", async () => {
    // Prepare: a cloud on its own dir, one bucket listed and one created.
    const dir = await mkdtemp(join(tmpdir(), "localcloud-buckets-"));
    const first = wrap(
      await startLocalCloud({
        port: 0,
        dir,
        ...fastDelays,
        credentials: knownKeys,
        buckets: ["from-option"],
      }),
      dir,
    );
    await first.s3.send(new CreateBucketCommand({ Bucket: "from-create" }));
    await first.s3.send(new PutObjectCommand({ Bucket: "from-option", Key: "a", Body: "1" }));
    await first.s3.send(new PutObjectCommand({ Bucket: "from-create", Key: "b", Body: "2" }));
    first.s3.destroy();
    first.ec2.destroy();
    first.ssm.destroy();
    await first.cloud.close();

    // Act: the same dir, no buckets option.
    const second = wrap(
      await startLocalCloud({ port: 0, dir, ...fastDelays, credentials: knownKeys }),
      dir,
    );
    try {
      const a = await second.s3.send(new GetObjectCommand({ Bucket: "from-option", Key: "a" }));
      const b = await second.s3.send(new GetObjectCommand({ Bucket: "from-create", Key: "b" }));
      const other = await failure(
        second.s3.send(new GetObjectCommand({ Bucket: "never-made", Key: "a" })),
      );

      // Assess
      expect(await a.Body?.transformToString()).toBe("1");
      expect(await b.Body?.transformToString()).toBe("2");
      expect(other.name).toBe("NoSuchBucket");
    } finally {
      await second.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses to start with a bucket name S3 would refuse", async () => {
    const dir = await mkdtemp(join(tmpdir(), "localcloud-buckets-"));
    try {
      await expect(startLocalCloud({ port: 0, dir, buckets: ["Not_Valid"] })).rejects.toThrow(
        /not valid/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
