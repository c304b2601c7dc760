import { execFileSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { PluginSource, SourceContent } from "../../../lib/plugins/sources.js";
import { type StageResult, stagePlugin } from "../../../lib/plugins/staging.js";
import { testConfig } from "../../support/context.js";
import {
  githubTarball,
  listTree,
  paxRecord,
  pluginEntries,
  type RawEntry,
  rawTar,
  rawTarGz,
  writePluginDir,
  writeZeroBomb,
} from "../../support/plugin-fixtures.js";

// Staging against hostile archives, directly (no database, no instance). Each case asserts the
// error code and that nothing was written anywhere: the temp parent is empty afterwards and no
// file appeared next to it.

const MiB = 1024 * 1024;
let work: string;
/** Where staging puts its temp dirs; must be empty after every failure. */
let temps: string;
/** The parent of `temps`: a `..` escape would land here. */
let outside: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "staging-attacks-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});
beforeEach(async () => {
  outside = await mkdtemp(join(work, "case-"));
  temps = join(outside, "temps");
  await mkdir(temps);
});

const config = testConfig({ PLUGIN_MAX_BYTES: String(1 * MiB), PLUGIN_MAX_FILES: "50" });

async function* once(chunk: Buffer) {
  yield chunk;
}

/** A source yielding the given archive bytes (or stream), as a deployment scheme would. */
function archiveSource(
  body: Buffer | AsyncIterable<Uint8Array>,
  opts: { strip?: number; name?: string | null } = {},
): PluginSource {
  return {
    scheme: "test",
    canonical: "test://archive",
    name: opts.name ?? null,
    open: async (): Promise<SourceContent> => ({
      kind: "tar.gz",
      body: Buffer.isBuffer(body) ? once(body) : body,
      stripComponents: opts.strip ?? 0,
    }),
  };
}

async function stage(source: PluginSource, sha256?: string, cfg = config): Promise<StageResult> {
  return stagePlugin({ config: cfg }, source, {
    tempParent: temps,
    ...(sha256 !== undefined && { sha256 }),
  });
}

async function expectRejected(result: StageResult, code: string, message?: RegExp) {
  expect(result.kind).toBe("failed");
  if (result.kind !== "failed") return;
  expect(result.code).toBe(code);
  if (message) expect(result.message).toMatch(message);
  expect(await listTree(temps)).toEqual([]);
  expect(await readdir(outside)).toEqual(["temps"]);
}

const plugin = (extra: RawEntry[] = []) => [...pluginEntries({ name: "evil" }), ...extra];

describe("archive attacks", () => {
  it("a valid archive stages (the control case)", async () => {
    const result = await stage(archiveSource(rawTarGz(plugin())));
    expect(result.kind).toBe("staged");
    if (result.kind !== "staged") return;
    expect(result.plugin.manifest.name).toBe("evil");
    await result.plugin.cleanup();
    expect(await listTree(temps)).toEqual([]);
  });

  it.each<[string, RawEntry, RegExp]>([
    ["a symlink", { path: "link", type: "SymbolicLink", linkpath: "/etc/passwd" }, /symlink/],
    ["a hard link", { path: "hard", type: "Link", linkpath: "plugin.yaml" }, /hard link/],
    [
      "a character device",
      { path: "tty", type: "CharacterDevice", devmaj: 5, devmin: 0 },
      /device/,
    ],
    ["a block device", { path: "sda", type: "BlockDevice", devmaj: 8, devmin: 0 }, /device/],
    ["a FIFO", { path: "pipe", type: "FIFO" }, /FIFO/],
    ["a .. path", { path: "../escaped.txt", type: "File", body: "x" }, /'\.\.'/],
    ["a nested .. path", { path: "skills/../../escaped.txt", type: "File", body: "x" }, /'\.\.'/],
    ["an absolute path", { path: "/tmp/escaped.txt", type: "File", body: "x" }, /absolute/],
    ["a control character", { path: "bad\nname", type: "File", body: "x" }, /control/],
    ["a backslash", { path: "..\\escaped.txt", type: "File", body: "x" }, /backslash/],
  ])("refuses %s", async (_what, entry, message) => {
    await expectRejected(
      await stage(archiveSource(rawTarGz(plugin([entry])))),
      "INVALID_ARCHIVE",
      message,
    );
  });

  it("refuses a symlink placed before the files that would follow it", async () => {
    const entries: RawEntry[] = [
      { path: "skills", type: "SymbolicLink", linkpath: "/tmp" },
      { path: "skills/x.txt", type: "File", body: "x" },
      ...plugin(),
    ];
    await expectRejected(await stage(archiveSource(rawTarGz(entries))), "INVALID_ARCHIVE");
  });

  it("refuses a duplicate entry and a file used as a directory", async () => {
    await expectRejected(
      await stage(
        archiveSource(rawTarGz(plugin([{ path: "plugin.yaml", type: "File", body: "x" }]))),
      ),
      "INVALID_ARCHIVE",
      /duplicate|conflicting/,
    );
    await expectRejected(
      await stage(
        archiveSource(rawTarGz(plugin([{ path: "README.md/x", type: "File", body: "x" }]))),
      ),
      "INVALID_ARCHIVE",
    );
  });

  it("refuses unpacked bytes over PLUGIN_MAX_BYTES at the header, before reading them", async () => {
    const big = { path: "big.bin", type: "File" as const, body: Buffer.alloc(MiB + 1) };
    await expectRejected(await stage(archiveSource(rawTarGz(plugin([big])))), "PLUGIN_TOO_LARGE");
  });

  it("refuses many files that only together exceed PLUGIN_MAX_BYTES", async () => {
    const parts = Array.from({ length: 5 }, (_, i) => ({
      path: `part-${i}.bin`,
      type: "File" as const,
      body: Buffer.alloc(300 * 1024, i),
    }));
    await expectRejected(await stage(archiveSource(rawTarGz(plugin(parts)))), "PLUGIN_TOO_LARGE");
  });

  it("refuses more entries than PLUGIN_MAX_FILES", async () => {
    const many = Array.from({ length: 60 }, (_, i) => ({
      path: `f/${i}.txt`,
      type: "File" as const,
      body: "x",
    }));
    await expectRejected(
      await stage(archiveSource(rawTarGz(plugin(many)))),
      "PLUGIN_TOO_LARGE",
      /entries/,
    );
  });

  async function countedFile(file: string) {
    const counter = { read: 0 };
    async function* body() {
      for await (const chunk of createReadStream(file)) {
        counter.read += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
    }
    return { counter, body: body() };
  }

  it("stops a 1 GiB gzip bomb quickly, without inflating it", async () => {
    // Prepare: 1 GiB of zeros, ~1 MiB gzipped, written streaming.
    const bomb = join(work, "bomb.tar.gz");
    await writeZeroBomb(bomb, 1024 * MiB);
    expect((await stat(bomb)).size).toBeLessThan(2 * MiB);
    const { counter, body } = await countedFile(bomb);
    // Act
    const started = performance.now();
    const result = await stage(archiveSource(body));
    // Assess: rejected from the header, after reading a sliver of the compressed stream.
    expect(performance.now() - started).toBeLessThan(3000);
    await expectRejected(result, "PLUGIN_TOO_LARGE");
    expect(counter.read).toBeLessThan(MiB);
  });

  it("stops a 1 GiB gzip bomb behind a header that claims 100 bytes", async () => {
    // The zeros after the small entry read as the end-of-archive marker; nothing past it is
    // inflated, and the "plugin" has no manifest.
    const bomb = join(work, "liar.tar.gz");
    await writeZeroBomb(bomb, 1024 * MiB, { headerSize: 100 });
    const { counter, body } = await countedFile(bomb);
    const started = performance.now();
    const result = await stage(archiveSource(body));
    expect(performance.now() - started).toBeLessThan(3000);
    await expectRejected(result, "INVALID_MANIFEST");
    expect(counter.read).toBeLessThan(MiB);
  });

  it("stops a stream of metadata that no entry header accounts for at the inflated cap", async () => {
    // Pax headers are consumed by the parser and are not entries: only the inflated-bytes cap
    // stops a flood of them (here ~60 MB inflated from a few hundred KB).
    const record = paxRecord("comment", "x".repeat(60_000));
    const flood: RawEntry[] = Array.from({ length: 1000 }, () => ({
      path: "PaxHeader",
      type: "ExtendedHeader",
      body: record,
    }));
    await expectRejected(
      await stage(archiveSource(rawTarGz([...flood, ...plugin()]))),
      "PLUGIN_TOO_LARGE",
      /inflated/,
    );
  });

  it("stops a gzip header that never ends at the compressed cap", async () => {
    // A gzip FCOMMENT field is unbounded and inflates to nothing: only the compressed-bytes cap
    // sees it. 0x10 = FCOMMENT.
    const header = Buffer.from([0x1f, 0x8b, 0x08, 0x10, 0, 0, 0, 0, 0, 0x03]);
    async function* endless() {
      yield header;
      for (let i = 0; i < 64; i++) yield Buffer.alloc(64 * 1024, 0x61);
    }
    await expectRejected(await stage(archiveSource(endless())), "PLUGIN_TOO_LARGE", /compressed/);
  });

  it("never reads past the end-of-archive marker", async () => {
    // A valid plugin followed by 64 MiB of garbage: staged, and the garbage is never inflated.
    const tar = rawTar(plugin());
    const garbage = Buffer.alloc(64 * MiB, 0x5a);
    const body = gzipSync(Buffer.concat([tar, garbage]), { level: 1 });
    const result = await stage(archiveSource(body));
    expect(result.kind).toBe("staged");
    if (result.kind === "staged") await result.plugin.cleanup();
  });

  it.each<[string, Buffer]>([
    ["not gzip at all", Buffer.from("plain text, not an archive")],
    ["gzip of something that is not tar", gzipSync(Buffer.alloc(4096, 0x41))],
    ["a truncated archive", rawTarGz(plugin()).subarray(0, 60)],
    ["nested gzip", gzipSync(rawTarGz(plugin()))],
    ["an empty archive", gzipSync(Buffer.alloc(1024))],
    ["a one-byte stream", gzipSync(Buffer.from([0x1f]))],
    ["an empty stream", gzipSync(Buffer.alloc(0))],
  ])("refuses %s", async (_what, body) => {
    await expectRejected(await stage(archiveSource(body)), "INVALID_ARCHIVE");
  });

  it("refuses an unsupported entry type", async () => {
    const odd: RawEntry = { path: "sparse", type: "SparseFile", body: "x" };
    await expectRejected(await stage(archiveSource(rawTarGz(plugin([odd])))), "INVALID_ARCHIVE");
  });

  it("requires exactly one top-level directory when stripping it", async () => {
    const two = [
      ...pluginEntries({ name: "evil" }, "one"),
      { path: "two/x", type: "File" as const, body: "x" },
    ];
    await expectRejected(
      await stage(archiveSource(rawTarGz(two), { strip: 1 })),
      "INVALID_ARCHIVE",
      /top-level/,
    );
    const flat = pluginEntries({ name: "evil" });
    await expectRejected(
      await stage(archiveSource(rawTarGz(flat), { strip: 1 })),
      "INVALID_ARCHIVE",
    );
    const ok = await stage(
      archiveSource(githubTarball({ name: "evil", skills: ["s"] }), { strip: 1 }),
    );
    expect(ok.kind === "staged" && ok.plugin.files.map((f) => f.path)).toEqual([
      "README.md",
      "plugin.yaml",
      "skills/s/SKILL.md",
    ]);
    if (ok.kind === "staged") await ok.plugin.cleanup();
  });
});

describe("manifest and integrity checks", () => {
  it.each<[string, RawEntry[], RegExp]>([
    ["a missing plugin.yaml", [{ path: "README.md", type: "File", body: "x" }], /no plugin\.yaml/],
    ["broken YAML", [{ path: "plugin.yaml", type: "File", body: "name: [\n" }], /YAML/],
    [
      "an invalid name in the YAML",
      [{ path: "plugin.yaml", type: "File", body: "name: ../evil\nversion: 1.0.0\n" }],
      /name/,
    ],
    [
      "a declared skill without SKILL.md",
      [{ path: "plugin.yaml", type: "File", body: "name: x\nversion: 1.0.0\nskills: [ghost]\n" }],
      /ghost/,
    ],
    [
      "a plugin.yaml that is a directory",
      [
        { path: "plugin.yaml/", type: "Directory" },
        { path: "a", type: "File", body: "x" },
      ],
      /plugin\.yaml/,
    ],
  ])("refuses %s with INVALID_MANIFEST", async (_what, entries, message) => {
    await expectRejected(
      await stage(archiveSource(rawTarGz(entries))),
      "INVALID_MANIFEST",
      message,
    );
  });

  it("checks the requested sha256 against the canonical digest", async () => {
    const archive = rawTarGz(plugin());
    const first = await stage(archiveSource(archive));
    if (first.kind !== "staged") throw new Error("control case failed");
    const digest = first.plugin.digest;
    await first.plugin.cleanup();

    await expectRejected(
      await stage(archiveSource(archive), "0".repeat(64)),
      "INTEGRITY_MISMATCH",
      new RegExp(digest),
    );
    const upper = await stage(archiveSource(archive), digest.toUpperCase());
    expect(upper.kind).toBe("staged");
    if (upper.kind === "staged") await upper.plugin.cleanup();
  });

  it("refuses a source whose manifest names another plugin", async () => {
    await expectRejected(
      await stage(archiveSource(rawTarGz(plugin()), { name: "innocent" })),
      "PLUGIN_NAME_MISMATCH",
    );
  });
});

describe("local registry directories", () => {
  async function registrySource(name: string, registry: string) {
    const { localSource } = await import("../../../lib/plugins/sources.js");
    const parsed = localSource(name, testConfig({ PLUGINS_DIR: registry }));
    if (parsed.kind !== "parsed") throw new Error("parse failed");
    return parsed.source;
  }

  it("copies a registry plugin and normalises its modes", async () => {
    const registry = join(outside, "registry");
    const root = await writePluginDir(registry, { name: "good", skills: ["s"] });
    execFileSync("chmod", ["700", join(root, "README.md")]);
    const result = await stage(await registrySource("good", registry));
    expect(result.kind).toBe("staged");
    if (result.kind !== "staged") return;
    expect((await stat(join(result.plugin.dir, "README.md"))).mode & 0o777).toBe(0o644);
    await result.plugin.cleanup();
  });

  it("refuses a registry plugin holding a symlink or a FIFO", async () => {
    const registry = join(outside, "registry");
    const a = await writePluginDir(registry, { name: "linky" });
    await symlink("/etc/passwd", join(a, "passwd"));
    const b = await writePluginDir(registry, { name: "piped" });
    execFileSync("mkfifo", [join(b, "pipe")]);
    for (const name of ["linky", "piped"]) {
      const result = await stage(await registrySource(name, registry));
      expect(result).toMatchObject({ kind: "failed", code: "INVALID_ARCHIVE" });
      expect(await listTree(temps)).toEqual([]);
    }
  });

  it("answers PLUGIN_NOT_FOUND for a plugin the registry lacks, or a file in its place", async () => {
    const registry = join(outside, "registry");
    await mkdir(registry);
    await writeFile(join(registry, "afile"), "x");
    for (const name of ["absent", "afile"]) {
      const result = await stage(await registrySource(name, registry));
      expect(result).toMatchObject({ kind: "failed", code: "PLUGIN_NOT_FOUND" });
    }
    expect(await listTree(temps)).toEqual([]);
  });
});
