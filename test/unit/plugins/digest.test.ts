import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pluginDigest, sortByPath, walkTree } from "../../../lib/plugins/digest.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "digest-test-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function tree(files: Record<string, string | Buffer>): Promise<string> {
  const root = await mkdtemp(join(dir, "t-"));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  return root;
}

async function digestOf(files: Record<string, string | Buffer>): Promise<string> {
  const root = await tree(files);
  const walked = await walkTree(root, { maxBytes: 1e9, maxEntries: 1e6 });
  if (walked.kind !== "walked") throw new Error(walked.message);
  return pluginDigest(root, walked.files);
}

describe("the canonical digest", () => {
  it("is sha256 over path NUL length NUL content, in byte order of the paths", async () => {
    // Prepare: the definition, computed independently.
    const files = { "b.txt": "bee", "a/z.md": "zed", "a-b": "" };
    const expected = createHash("sha256");
    for (const path of ["a-b", "a/z.md", "b.txt"]) {
      const content = Buffer.from(files[path as keyof typeof files]);
      expected.update(Buffer.concat([Buffer.from(`${path}\0${content.length}\0`), content]));
    }
    // Act + Assess
    expect(await digestOf(files)).toBe(expected.digest("hex"));
  });

  it("tells apart file sets that plain path-NUL-content concatenation would not", async () => {
    const one = await digestOf({ a: "xb\0y" });
    const two = await digestOf({ a: "x", b: "y" });
    expect(one).not.toBe(two);
  });

  it("ignores directories, modes and times but not names or content", async () => {
    const base = await digestOf({ "x/y": "1" });
    const root = await tree({ "x/y": "1" });
    await mkdir(join(root, "empty-dir"));
    execFileSync("chmod", ["755", join(root, "x/y")]);
    execFileSync("touch", ["-d", "2001-01-01", join(root, "x/y")]);
    const walked = await walkTree(root, { maxBytes: 100, maxEntries: 100 });
    if (walked.kind !== "walked") throw new Error("walk failed");
    expect(await pluginDigest(root, walked.files)).toBe(base);
    expect(await digestOf({ "x/z": "1" })).not.toBe(base);
    expect(await digestOf({ "x/y": "2" })).not.toBe(base);
  });

  it("sorts by UTF-8 bytes, not by locale", () => {
    const sorted = sortByPath([
      { path: "é" },
      { path: "z" },
      { path: "a/b" },
      { path: "a-b" },
      { path: "B" },
    ]);
    expect(sorted.map((f) => f.path)).toEqual(["B", "a-b", "a/b", "z", "é"]);
  });
});

describe("walking a staged tree", () => {
  it("lists regular files sorted and counts directories", async () => {
    const root = await tree({ "b/c.txt": "12", "a.txt": "1" });
    expect(await walkTree(root, { maxBytes: 100, maxEntries: 100 })).toEqual({
      kind: "walked",
      files: [
        { path: "a.txt", size: 1 },
        { path: "b/c.txt", size: 2 },
      ],
      directories: ["b"],
      bytes: 3,
    });
  });

  it("refuses a symlink, even one pointing inside", async () => {
    const root = await tree({ "a.txt": "1" });
    await symlink("a.txt", join(root, "link"));
    expect(await walkTree(root, { maxBytes: 100, maxEntries: 100 })).toMatchObject({
      kind: "rejected",
      code: "INVALID_ARCHIVE",
    });
  });

  it("refuses a FIFO", async () => {
    const root = await tree({ "a.txt": "1" });
    execFileSync("mkfifo", [join(root, "pipe")]);
    expect(await walkTree(root, { maxBytes: 100, maxEntries: 100 })).toMatchObject({
      kind: "rejected",
      code: "INVALID_ARCHIVE",
    });
  });

  it("stops at the byte and entry caps", async () => {
    const root = await tree({ a: "12345", b: "12345", "c/d": "1" });
    expect(await walkTree(root, { maxBytes: 9, maxEntries: 100 })).toMatchObject({
      code: "PLUGIN_TOO_LARGE",
    });
    expect(await walkTree(root, { maxBytes: 100, maxEntries: 3 })).toMatchObject({
      code: "PLUGIN_TOO_LARGE",
    });
    expect((await walkTree(root, { maxBytes: 11, maxEntries: 4 })).kind).toBe("walked");
  });
});
