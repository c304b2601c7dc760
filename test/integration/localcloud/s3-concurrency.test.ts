import { createHash, randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientConfig, startTestCloud, type TestCloud } from "./harness.js";

// Concurrent PutObject of one key: "Amazon S3 never adds partial objects" and, receiving several
// writes of one object at once, "overwrites all but the last object written"
// (AmazonS3/latest/API/API_PutObject.html); a reader never sees a mix.

const rounds = [1, 2, 3];
const writers = 8;
const putsPerWriter = 5;
const readerCount = 4;

let t: TestCloud;
/** Readers do not retry: a single 500 during the race is seen. */
let readerS3: S3Client;

beforeAll(async () => {
  t = await startTestCloud({ buckets: rounds.map((r) => `race-${r}`) });
  readerS3 = new S3Client({ ...clientConfig(t.cloud), forcePathStyle: true, maxAttempts: 1 });
});

afterAll(async () => {
  readerS3.destroy();
  await t.close();
});

const etagOf = (body: Buffer) => `"${createHash("md5").update(body).digest("hex")}"`;

/** One GET: the body and ETag it answered, NoSuchKey, or whatever else went wrong. */
async function read(
  bucket: string,
  key: string,
): Promise<{ body: Buffer; etag: string } | "missing" | { error: string }> {
  try {
    const got = await readerS3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return {
      body: Buffer.from((await got.Body?.transformToByteArray()) ?? []),
      etag: got.ETag ?? "",
    };
  } catch (err) {
    const name = err instanceof Error ? err.name : String(err);
    return name === "NoSuchKey" ? "missing" : { error: name };
  }
}

describe("concurrent PutObject of one key", () => {
  it.each(rounds)(
    "round %i: leaves exactly one of the bodies, whole, with its ETag; readers never see a mix",
    async (round) => {
      // Prepare: different bodies of different sizes, so a mix could not pass as one of them.
      const bucket = `race-${round}`;
      const key = "plugins/shared.tgz";
      const bodies = Array.from({ length: writers }, (_, i) => randomBytes(64 * 1024 + i * 4099));
      const byEtag = new Map(bodies.map((b) => [etagOf(b), b]));
      let racing = true;
      const seen: Awaited<ReturnType<typeof read>>[] = [];
      // Readers that read again as soon as they have an answer, for as long as the race lasts.
      const readers = Array.from({ length: readerCount }, async () => {
        while (racing) seen.push(await read(bucket, key));
      });

      // Act: every writer puts its body several times, so versions keep replacing each other.
      const puts = await Promise.all(
        bodies.map(async (Body) => {
          const etags: (string | undefined)[] = [];
          for (let i = 0; i < putsPerWriter; i++) {
            const out = await t.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body }));
            etags.push(out.ETag);
          }
          return etags;
        }),
      );
      racing = false;
      await Promise.all(readers);
      const final = await read(bucket, key);

      // Assess: every writer was told its own ETag; the survivor is one body, whole.
      expect(puts).toEqual(bodies.map((b) => Array(putsPerWriter).fill(etagOf(b))));
      if (final === "missing" || "error" in final) throw new Error(`final GET: ${String(final)}`);
      expect(byEtag.get(final.etag)?.equals(final.body)).toBe(true);
      const whole = seen.filter((r) => typeof r === "object" && "body" in r);
      expect(whole.length).toBeGreaterThan(0);
      for (const r of seen) {
        if (r === "missing") continue;
        expect(r).not.toHaveProperty("error");
        if ("body" in r) expect(byEtag.get(r.etag)?.equals(r.body)).toBe(true);
      }
      // No data file leaks: one metadata file and the one data file it names.
      const files = await readdir(join(t.dir, "s3", bucket));
      expect(files.filter((f) => f.endsWith(".json"))).toHaveLength(1);
      expect(files.filter((f) => f.endsWith(".bin"))).toHaveLength(1);
      expect(files).toHaveLength(2);
    },
  );
});
