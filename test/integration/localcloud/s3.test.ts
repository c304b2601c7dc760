import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import { GetCommandInvocationCommand, SendCommandCommand } from "@aws-sdk/client-ssm";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { failure, launchOnline, startTestCloud, type TestCloud, waitFor } from "./harness.js";

const run = promisify(execFile);

let t: TestCloud;

beforeAll(async () => {
  t = await startTestCloud({ buckets: ["listed", "binary", "presign"] });
  await t.s3.send(new CreateBucketCommand({ Bucket: "created" }));
});

afterAll(async () => {
  await t.close();
});

/** curl, no shell: status code on the last line after the body. */
async function curl(url: string): Promise<{ status: number; body: string }> {
  const { stdout } = await run("curl", ["-sS", "-w", "\n%{http_code}", url]);
  const cut = stdout.lastIndexOf("\n");
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

describe("objects", () => {
  it("puts, gets, heads and deletes an object in a bucket made by CreateBucket", async () => {
    const put = await t.s3.send(
      new PutObjectCommand({
        Bucket: "created",
        Key: "dir/hello world ✓.txt",
        Body: "hello",
        ContentType: "text/plain",
        Metadata: { owner: "alice" },
      }),
    );
    // ETag is the quoted MD5 of the bytes.
    expect(put.ETag).toBe('"5d41402abc4b2a76b9719d911017c592"');

    const got = await t.s3.send(
      new GetObjectCommand({ Bucket: "created", Key: "dir/hello world ✓.txt" }),
    );
    expect(await got.Body?.transformToString()).toBe("hello");
    expect(got.ContentType).toBe("text/plain");
    expect(got.ETag).toBe(put.ETag);
    expect(got.ContentLength).toBe(5);
    expect(got.Metadata).toEqual({ owner: "alice" });

    const head = await t.s3.send(
      new HeadObjectCommand({ Bucket: "created", Key: "dir/hello world ✓.txt" }),
    );
    expect(head.ContentLength).toBe(5);
    expect(head.LastModified).toBeInstanceOf(Date);

    const del = await t.s3.send(
      new DeleteObjectCommand({ Bucket: "created", Key: "dir/hello world ✓.txt" }),
    );
    expect(del.$metadata.httpStatusCode).toBe(204);
    const again = await t.s3.send(
      new DeleteObjectCommand({ Bucket: "created", Key: "dir/hello world ✓.txt" }),
    );
    expect(again.$metadata.httpStatusCode).toBe(204);
  });

  it("answers NoSuchKey (404) on GET and NotFound (404, no body) on HEAD of a missing key", async () => {
    const get = await failure(t.s3.send(new GetObjectCommand({ Bucket: "listed", Key: "nope" })));
    expect(get.name).toBe("NoSuchKey");
    expect(get.$metadata?.httpStatusCode).toBe(404);
    const head = await failure(t.s3.send(new HeadObjectCommand({ Bucket: "listed", Key: "nope" })));
    expect(head.name).toBe("NotFound");
    expect(head.$metadata?.httpStatusCode).toBe(404);
  });

  it("round-trips binary bytes sent as an aws-chunked stream with a CRC32 trailer", async () => {
    const bytes = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7) % 256));
    await t.s3.send(
      new PutObjectCommand({
        Bucket: "binary",
        Key: "blob.bin",
        Body: Readable.from([bytes.subarray(0, 60_000), bytes.subarray(60_000)]),
        ContentLength: bytes.byteLength,
      }),
    );
    const got = await t.s3.send(new GetObjectCommand({ Bucket: "binary", Key: "blob.bin" }));
    const back = Buffer.from((await got.Body?.transformToByteArray()) ?? []);
    expect(back.equals(bytes)).toBe(true);
    // The SDK asked for and verified the stored checksum.
    expect(got.ChecksumCRC32).toBeTruthy();
    expect(got.ContentType).toBe("application/octet-stream");
  });

  it("refuses an upload whose checksum does not match (BadDigest)", async () => {
    // A presigned PUT from the SDK's defaults signs the CRC-32 of an empty body into the URL.
    const url = await getSignedUrl(
      t.s3,
      new PutObjectCommand({ Bucket: "binary", Key: "bad-digest" }),
      { expiresIn: 60 },
    );
    expect(new URL(url).searchParams.get("x-amz-checksum-crc32")).toBe("AAAAAA==");
    const res = await fetch(url, { method: "PUT", body: "some bytes" });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("<Code>BadDigest</Code>");
    const err = await failure(
      t.s3.send(new GetObjectCommand({ Bucket: "binary", Key: "bad-digest" })),
    );
    expect(err.name).toBe("NoSuchKey");
  });
});

describe("presigned URLs", () => {
  it("serves a presigned GET to plain curl", async () => {
    await t.s3.send(
      new PutObjectCommand({ Bucket: "presign", Key: "plugin/a b.tgz", Body: "payload" }),
    );
    const url = await getSignedUrl(
      t.s3,
      new GetObjectCommand({ Bucket: "presign", Key: "plugin/a b.tgz" }),
      {
        expiresIn: 60,
      },
    );
    expect(url).toContain("X-Amz-Signature=");

    const res = await curl(url);

    expect(res).toEqual({ status: 200, body: "payload" });
  });

  it("refuses an expired presigned URL with 403 AccessDenied", async () => {
    await t.s3.send(new PutObjectCommand({ Bucket: "presign", Key: "old", Body: "x" }));
    const url = await getSignedUrl(t.s3, new GetObjectCommand({ Bucket: "presign", Key: "old" }), {
      expiresIn: 60,
      signingDate: new Date(Date.now() - 120_000),
    });

    const res = await curl(url);

    expect(res.status).toBe(403);
    expect(res.body).toContain("<Code>AccessDenied</Code>");
    expect(res.body).toContain("<Message>Request has expired</Message>");
  });

  it("lets an SSM command on an instance fetch a presigned URL with curl into its dir", async () => {
    const id = await launchOnline(t);
    await t.s3.send(
      new PutObjectCommand({ Bucket: "presign", Key: "to-instance.txt", Body: "delivered" }),
    );
    const url = await getSignedUrl(
      t.s3,
      new GetObjectCommand({ Bucket: "presign", Key: "to-instance.txt" }),
      {
        expiresIn: 60,
      },
    );
    const sent = await t.ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: [id],
        Parameters: { commands: [`curl -sSf -o "$WORKSPACE_ROOT/fetched.txt" '${url}'`] },
      }),
    );
    const out = await waitFor(async () => {
      const o = await t.ssm.send(
        new GetCommandInvocationCommand({ CommandId: sent.Command?.CommandId, InstanceId: id }),
      );
      return o.Status === "Success" || o.Status === "Failed" ? o : undefined;
    });
    expect(out.Status).toBe("Success");
    expect(await readFile(join(t.dir, "instances", id, "fetched.txt"), "utf8")).toBe("delivered");
  });
});
