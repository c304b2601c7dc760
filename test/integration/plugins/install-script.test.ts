import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Program } from "../../../lib/compute/script.js";
import { INSTALL_EXIT, installProgram, uninstallProgram } from "../../../lib/plugins/scripts.js";
import { localSource } from "../../../lib/plugins/sources.js";
import { packPlugin, stagePlugin } from "../../../lib/plugins/staging.js";
import { testConfig } from "../../support/context.js";
import {
  listTree,
  type PluginSpec,
  startTarballServer,
  type TarballServer,
  writePluginDir,
} from "../../support/plugin-fixtures.js";

// The install and uninstall programs, run by the real /bin/sh against a temp WORKSPACE_ROOT,
// downloading from a loopback server — what the local cloud (and an instance) does, minus SSM.

let work: string;
let registry: string;
let root: string;
let server: TarballServer;
const archives = new Map<string, Buffer>();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "install-script-"));
  registry = join(work, "registry");
  server = await startTarballServer((req, res) => {
    const body = archives.get(req.url ?? "");
    res.writeHead(body ? 200 : 404);
    res.end(body ?? "missing");
  });
});
afterAll(async () => {
  await server.close();
  await rm(work, { recursive: true, force: true });
});
beforeEach(async () => {
  root = await mkdtemp(join(work, "root-"));
});

interface Built {
  url: string;
  sha256: string;
  skills: string[];
  name: string;
}

/** Stages and packs a plugin (as the API does) and serves it under a fresh URL. */
async function build(spec: PluginSpec): Promise<Built> {
  const dir = join(registry, `${spec.name}-${spec.version ?? "1.0.0"}`);
  await writePluginDir(dir, spec);
  const parsed = localSource(spec.name, testConfig({ PLUGINS_DIR: dir }));
  if (parsed.kind !== "parsed") throw new Error("parse failed");
  const staged = await stagePlugin({ config: testConfig() }, parsed.source);
  if (staged.kind !== "staged") throw new Error(staged.message);
  const packed = await packPlugin(staged.plugin);
  await staged.plugin.cleanup();
  const path = `/${packed.sha256}.tar.gz`;
  archives.set(path, packed.archive);
  return {
    url: `${server.url}${path}`,
    sha256: packed.sha256,
    skills: spec.skills ?? [],
    name: spec.name,
  };
}

let txn = 0;
/** Runs a program under /bin/sh (asynchronously: the archive server lives in this process). */
function run(
  script: Program,
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", script.text], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", WORKSPACE_ROOT: root, ...env },
      timeout: 20_000,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const install = (b: Built, over: Partial<Built> = {}, env: Record<string, string> = {}) =>
  run(
    installProgram({
      name: b.name,
      url: over.url ?? b.url,
      archiveSha256: over.sha256 ?? b.sha256,
      skills: over.skills ?? b.skills,
      txn: `t${++txn}`,
    }),
    env,
  );

const read = (path: string) => readFile(join(root, path), "utf8");

/** Every path and file content under configs/, for before/after comparisons. */
async function snapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const path of await listTree(join(root, "configs"))) {
    try {
      out[path] = await read(join("configs", path));
    } catch {
      out[path] = "<dir>";
    }
  }
  return out;
}

describe("the install program", () => {
  it("installs the plugin's files and copies its skills with an owner marker", async () => {
    const v1 = await build({ name: "kit", version: "1.0.0", skills: ["alpha", "beta"] });
    const result = await install(v1);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(await read("configs/plugins/kit/plugin.yaml")).toContain('version: "1.0.0"');
    expect(await read("configs/skills/alpha/SKILL.md")).toContain("alpha of kit 1.0.0");
    expect(await read("configs/skills/beta/.wcp-plugin")).toBe("kit\n");
    // No work directories are left behind.
    expect(await listTree(join(root, "configs/plugins"))).not.toContainEqual(
      expect.stringMatching(/^\./),
    );
    expect(await listTree(join(root, "configs/skills"))).not.toContainEqual(
      expect.stringMatching(/^\./),
    );
  });

  it("upgrades in place and drops skills the new version no longer declares", async () => {
    await install(await build({ name: "kit", version: "1.0.0", skills: ["alpha", "beta"] }));
    const v2 = await build({
      name: "kit",
      version: "2.0.0",
      skills: ["alpha"],
      files: { "new.txt": "n" },
    });
    const result = await install(v2);
    expect(result.code).toBe(0);
    expect(await read("configs/plugins/kit/plugin.yaml")).toContain('version: "2.0.0"');
    expect(await read("configs/plugins/kit/new.txt")).toBe("n");
    expect(await read("configs/skills/alpha/SKILL.md")).toContain("alpha of kit 2.0.0");
    expect(await listTree(join(root, "configs/skills"))).toEqual([
      "alpha",
      "alpha/.wcp-plugin",
      "alpha/SKILL.md",
    ]);
  });

  it("leaves the installed version intact when the archive's sha256 does not match", async () => {
    await install(await build({ name: "kit", version: "1.0.0", skills: ["alpha"] }));
    const before = await snapshot();
    const v2 = await build({ name: "kit", version: "2.0.0", skills: ["alpha"] });
    const result = await install(v2, { sha256: "0".repeat(64) });
    expect(result.code).toBe(INSTALL_EXIT.digestMismatch);
    expect(result.stderr).toContain("sha256 mismatch");
    expect(await snapshot()).toEqual(before);
  });

  it("leaves the installed version intact when the download fails", async () => {
    await install(await build({ name: "kit", version: "1.0.0", skills: ["alpha"] }));
    const before = await snapshot();
    const result = await install(await build({ name: "kit", version: "2.0.0" }), {
      url: `${server.url}/nothing`,
    });
    expect(result.code).not.toBe(0);
    expect(await snapshot()).toEqual(before);
  });

  it("refuses to replace a skill that belongs to another plugin or to nobody", async () => {
    await install(await build({ name: "other", skills: ["shared"] }));
    await mkdir(join(root, "configs/skills/handmade"), { recursive: true });
    await writeFile(join(root, "configs/skills/handmade/SKILL.md"), "mine");
    const before = await snapshot();
    for (const skill of ["shared", "handmade"]) {
      const result = await install(await build({ name: `kit-${skill}`, skills: [skill] }));
      expect(result.code).toBe(INSTALL_EXIT.skillConflict);
      expect(await snapshot()).toEqual(before);
    }
  });

  it("rolls the swap back when a rename inside it fails", async () => {
    // Prepare: v1 installed; an `mv` that fails when it would put the new plugin in place, i.e.
    // after the old skills and the old plugin directory were already moved aside.
    await install(await build({ name: "kit", version: "1.0.0", skills: ["alpha", "beta"] }));
    const before = await snapshot();
    const bin = join(work, "fakebin");
    await mkdir(bin, { recursive: true });
    await writeFile(
      join(bin, "mv"),
      `#!/bin/sh\ncase "$1" in */.staging-*/tree) echo "mv refused" >&2; exit 1;; esac\nexec /bin/mv "$@"\n`,
    );
    await chmod(join(bin, "mv"), 0o755);
    // Act
    const v2 = await build({ name: "kit", version: "2.0.0", skills: ["alpha"] });
    const result = await install(v2, {}, { PATH: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}` });
    // Assess: the failure is reported and v1 with both skills is back, byte for byte.
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("mv refused");
    expect(await snapshot()).toEqual(before);
  });

  it("treats a hostile URL as one literal word", async () => {
    const v1 = await build({ name: "kit" });
    const marker = join(root, "pwned");
    const result = await install(v1, {
      url: `http://127.0.0.1:9/$(touch ${marker})';touch ${marker};'`,
    });
    expect(result.code).not.toBe(0);
    expect(await listTree(root)).not.toContain("pwned");
  });
});

describe("the uninstall program", () => {
  it("removes the plugin's directory and only its own skills", async () => {
    await install(await build({ name: "kit", skills: ["alpha"] }));
    await install(await build({ name: "other", skills: ["beta"] }));
    const result = await run(uninstallProgram({ name: "kit", txn: "u1" }));
    expect(result.code).toBe(0);
    expect(await listTree(join(root, "configs/plugins"))).not.toContainEqual(
      expect.stringMatching(/^kit/),
    );
    const skills = await listTree(join(root, "configs/skills"));
    expect(skills).not.toContainEqual(expect.stringMatching(/^alpha/));
    expect(skills).toContain("beta/SKILL.md");
    expect(await listTree(join(root, "configs/plugins"))).not.toContainEqual(
      expect.stringMatching(/^\./),
    );
  });

  it("succeeds when the plugin is already gone", async () => {
    expect((await run(uninstallProgram({ name: "never-installed", txn: "u2" }))).code).toBe(0);
  });
});
