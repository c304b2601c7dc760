import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { CreateBucketCommand, ListBucketsCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, runEntry, type Spawned, spawnEntry } from "../../support/spawned.js";
import { waitFor } from "../../support/wait.js";

// `npm run localcloud` as a user meets it: bad settings and a busy port are one line naming the
// variable (exit 2), the printed exports are enough for the AWS CLI and SDKs (region included),
// and `aws s3 ls` — ListBuckets at the service root — answers as S3 does.

const ENTRY = "lib/localcloud/main.ts";
const run = promisify(execFile);
let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "wcp-localcloud-main-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const linesOf = (text: string) => text.split("\n").filter((l) => l.trim() !== "");

/** Whether the AWS CLI is installed here (it is no dependency of the project). */
async function hasAwsCli(): Promise<boolean> {
  return run("aws", ["--version"]).then(
    () => true,
    () => false,
  );
}

describe("npm run localcloud settings", () => {
  it.each([
    ["abc", "LOCALCLOUD_PORT: must be a port number 0-65535 (0: any free port)"],
    ["", "LOCALCLOUD_PORT: must be a port number 0-65535 (0: any free port)"],
    ["70000", "LOCALCLOUD_PORT: must be a port number 0-65535 (0: any free port)"],
  ])("LOCALCLOUD_PORT=%j is one line, exit 2", async (value, line) => {
    const result = await runEntry(ENTRY, {
      LOCALCLOUD_PORT: value,
      LOCALCLOUD_DIR: join(root, "x"),
    });
    expect(result.code).toBe(2);
    expect(linesOf(result.stderr)).toEqual([line]);
  });

  it("a port in use is one line naming LOCALCLOUD_PORT", async () => {
    const port = await freePort();
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(port, "127.0.0.1", r));
    try {
      const result = await runEntry(ENTRY, {
        LOCALCLOUD_PORT: String(port),
        LOCALCLOUD_DIR: join(root, "busy"),
      });
      expect(result.code).toBe(2);
      expect(linesOf(result.stderr)).toEqual([
        `LOCALCLOUD_PORT ${port} is already in use on 127.0.0.1; set LOCALCLOUD_PORT to a free port`,
      ]);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });
});

describe("npm run localcloud", () => {
  let cloud: Spawned;
  let exports: Record<string, string>;

  beforeAll(async () => {
    cloud = spawnEntry(ENTRY, {
      LOCALCLOUD_PORT: String(await freePort()),
      LOCALCLOUD_DIR: join(root, "state"),
    });
    const line = await waitFor(
      () =>
        cloud
          .stdout()
          .split("\n")
          .find((l) => l.trim().startsWith("export ")),
      30_000,
      50,
    );
    exports = Object.fromEntries(
      line
        .trim()
        .slice("export ".length)
        .split(" ")
        .map((pair) => pair.split("=", 2) as [string, string]),
    );
  }, 40_000);
  afterAll(async () => cloud?.stop());

  it("prints every export the AWS CLI and SDKs need, the region among them", () => {
    expect(Object.keys(exports).sort()).toEqual([
      "AWS_ACCESS_KEY_ID",
      "AWS_ENDPOINT_URL",
      "AWS_REGION",
      "AWS_SECRET_ACCESS_KEY",
    ]);
    expect(exports.AWS_REGION).toBe("us-east-1");
  });

  it("answers ListBuckets at the service root with the buckets made", async () => {
    // Prepare: the SDK configured from nothing but the printed exports.
    const s3 = new S3Client({
      region: exports.AWS_REGION,
      endpoint: exports.AWS_ENDPOINT_URL,
      forcePathStyle: true,
      credentials: {
        accessKeyId: exports.AWS_ACCESS_KEY_ID ?? "",
        secretAccessKey: exports.AWS_SECRET_ACCESS_KEY ?? "",
      },
    });
    await s3.send(new CreateBucketCommand({ Bucket: "made-by-test" }));

    // Act
    const listed = await s3.send(new ListBucketsCommand({}));

    // Assess
    expect(listed.Buckets?.map((b) => b.Name)).toContain("made-by-test");
    const made = listed.Buckets?.find((b) => b.Name === "made-by-test");
    expect(made?.CreationDate).toBeInstanceOf(Date);
    expect(listed.Owner?.ID).toMatch(/^[0-9a-f]{64}$/);
    s3.destroy();
  });

  it("serves `aws s3 ls` with the printed exports", async (ctx) => {
    if (!(await hasAwsCli())) ctx.skip();
    const { stdout } = await run("aws", ["s3", "ls"], {
      env: { PATH: process.env.PATH, HOME: root, ...exports },
    });
    expect(stdout).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d made-by-test$/m);
  });
});
