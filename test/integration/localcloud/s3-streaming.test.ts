import { createHash, randomBytes } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { Readable } from "node:stream";
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientConfig, failure, startTestCloud, type TestCloud, waitFor } from "./harness.js";

// A single PutObject up to AWS's 5 GiB (AmazonS3/latest/userguide/upload-objects.html), streamed
// to disk as it arrives, and GETs streamed back from disk.

const mib = 1024 * 1024;
const bucket = "big";

let t: TestCloud;
/** No default checksum: a presigned PUT URL then carries none for the raw uploads below. */
let plain: S3Client;

beforeAll(async () => {
  t = await startTestCloud({ buckets: [bucket] });
  plain = new S3Client({
    ...clientConfig(t.cloud),
    forcePathStyle: true,
    requestChecksumCalculation: "WHEN_REQUIRED",
  });
});

afterAll(async () => {
  plain.destroy();
  await t.close();
});

/** `size` random bytes in 1 MiB pieces, with their SHA-256 and the ETag S3 gives them (MD5). */
function generated(size: number) {
  const sha256 = createHash("sha256");
  const md5 = createHash("md5");
  const pieces: Buffer[] = [];
  for (let done = 0; done < size; done += mib) {
    const piece = randomBytes(Math.min(mib, size - done));
    sha256.update(piece);
    md5.update(piece);
    pieces.push(piece);
  }
  return { pieces, sha256: sha256.digest("hex"), etag: `"${md5.digest("hex")}"` };
}

async function sha256Of(body: ReadableStream<Uint8Array> | null): Promise<string> {
  const hash = createHash("sha256");
  if (body) for await (const piece of body) hash.update(piece);
  return hash.digest("hex");
}

/** Files in the bucket's directory, by kind. */
async function bucketFiles(): Promise<{ name: string; size: number }[]> {
  const dir = join(t.dir, "s3", bucket);
  return Promise.all(
    (await readdir(dir)).map(async (name) => ({ name, size: (await stat(join(dir, name))).size })),
  );
}

/** A raw PUT on a presigned URL: headers now, the body when the test says. */
function rawPut(url: string, headers: Record<string, string | number>) {
  const req = request(url, { method: "PUT", headers });
  const answer = new Promise<{ status: number; body: string; closed: boolean }>(
    (resolve, reject) => {
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            closed: res.headers.connection === "close",
          }),
        );
      });
      req.on("error", reject);
    },
  );
  return { req, answer };
}

describe("a 64 MiB object", () => {
  it.each([
    ["a stream (aws-chunked, CRC-32 trailer)", "stream"],
    ["a buffer (signed payload, CRC-32 header)", "buffer"],
  ] as const)(
    "goes up through the SDK as %s and comes back whole through a presigned GET",
    async (_what, kind) => {
      // Prepare
      const size = 64 * mib;
      const { pieces, sha256, etag } = generated(size);
      const key = `plugin-${kind}.tgz`;

      // Act
      const put = await t.s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: kind === "stream" ? Readable.from(pieces) : Buffer.concat(pieces),
          ContentLength: size,
        }),
      );
      const url = await getSignedUrl(t.s3, new GetObjectCommand({ Bucket: bucket, Key: key }), {
        expiresIn: 60,
      });
      const res = await fetch(url);

      // Assess
      expect(put.ETag).toBe(etag);
      expect(put.ChecksumCRC32).toBeTruthy();
      expect(res.status).toBe(200);
      expect(res.headers.get("content-length")).toBe(String(size));
      expect(await sha256Of(res.body)).toBe(sha256);
      const head = await t.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      expect(head.ContentLength).toBe(size);
      expect(head.ETag).toBe(etag);
    },
  );
});

describe("streaming to disk", () => {
  it("writes the body to the bucket dir before it has all arrived, publishing only at the end", async () => {
    // Prepare: an 8 MiB upload of which only the first half is sent for now.
    const { pieces, etag } = generated(8 * mib);
    const url = await getSignedUrl(plain, new PutObjectCommand({ Bucket: bucket, Key: "half" }), {
      expiresIn: 60,
    });
    const { req, answer } = rawPut(url, { "content-length": 8 * mib });
    for (const piece of pieces.slice(0, 4)) req.write(piece);

    // Act: wait until the half already sent is on disk.
    const partial = await waitFor(async () => {
      const part = (await bucketFiles()).find((f) => f.name.endsWith(".part"));
      return part && part.size >= 4 * mib ? part : undefined;
    });
    const whileSending = await failure(
      t.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "half" })),
    );
    for (const piece of pieces.slice(4)) req.write(piece);
    req.end();
    const done = await answer;

    // Assess: the server held the bytes on disk, not in memory, and showed nothing half-written.
    expect(partial.size).toBeLessThan(8 * mib);
    expect(whileSending.$metadata?.httpStatusCode).toBe(404);
    expect(done.status).toBe(200);
    const head = await t.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "half" }));
    expect(head.ETag).toBe(etag);
    expect((await bucketFiles()).some((f) => f.name.endsWith(".part"))).toBe(false);
  });

  it("removes the partial file of an upload whose client goes away", async () => {
    const url = await getSignedUrl(plain, new PutObjectCommand({ Bucket: bucket, Key: "gone" }), {
      expiresIn: 60,
    });
    const { req, answer } = rawPut(url, { "content-length": 4 * mib });
    answer.catch(() => undefined);
    req.write(Buffer.alloc(mib, 1));
    await waitFor(async () =>
      (await bucketFiles()).some((f) => f.name.endsWith(".part")) ? true : undefined,
    );

    req.destroy();

    await waitFor(async () =>
      (await bucketFiles()).some((f) => f.name.endsWith(".part")) ? undefined : true,
    );
    const err = await failure(t.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "gone" })));
    expect(err.$metadata?.httpStatusCode).toBe(404);
  });

  it("refuses a declared body over 5 GiB with EntityTooLarge before reading it, and closes", async () => {
    const url = await getSignedUrl(plain, new PutObjectCommand({ Bucket: bucket, Key: "huge" }), {
      expiresIn: 60,
    });
    const { req, answer } = rawPut(url, { "content-length": 5 * 1024 ** 3 + 1 });
    req.write(Buffer.alloc(64 * 1024));

    const res = await answer;
    req.destroy();

    expect(res.status).toBe(400);
    expect(res.body).toContain("<Code>EntityTooLarge</Code>");
    expect(res.body).toContain(`<MaxSizeAllowed>${5 * 1024 ** 3}</MaxSizeAllowed>`);
    expect(res.closed).toBe(true);
  });

  it("starts writing a declared body of exactly 5 GiB: the limit is inclusive", async () => {
    // Exactly 5 GiB declared is taken; only the first bytes are sent, then the client leaves.
    const url = await getSignedUrl(plain, new PutObjectCommand({ Bucket: bucket, Key: "edge" }), {
      expiresIn: 60,
    });
    const exact = rawPut(url, { "content-length": 5 * 1024 ** 3 });
    exact.answer.catch(() => undefined);
    exact.req.write(Buffer.alloc(64 * 1024));
    // Accepted and being written: the partial file appears.
    await waitFor(async () =>
      (await bucketFiles()).some((f) => f.name.endsWith(".part")) ? true : undefined,
    );
    exact.req.destroy();
    await waitFor(async () =>
      (await bucketFiles()).some((f) => f.name.endsWith(".part")) ? undefined : true,
    );
  });

  it("answers MissingContentLength (411) for a PUT that declares no length", async () => {
    const url = await getSignedUrl(plain, new PutObjectCommand({ Bucket: bucket, Key: "nolen" }), {
      expiresIn: 60,
    });
    const { req, answer } = rawPut(url, { "transfer-encoding": "chunked" });
    req.end("some bytes");

    const res = await answer;

    expect(res.status).toBe(411);
    expect(res.body).toContain("<Code>MissingContentLength</Code>");
  });
});
