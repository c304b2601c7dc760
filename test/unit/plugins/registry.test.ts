import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Log } from "../../../lib/deps.js";
import { listRegistry } from "../../../lib/plugins/registry.js";
import { testConfig } from "../../support/context.js";
import { writePluginDir } from "../../support/plugin-fixtures.js";

const warnings: unknown[] = [];
const log: Log = { debug() {}, info() {}, warn: (...a) => warnings.push(a), error() {} };

describe("the curated registry in plugins/", () => {
  const deps = { config: testConfig({ PLUGINS_DIR: "./plugins" }), log };

  it("lists the sample plugins with their manifests", async () => {
    const plugins = await listRegistry(deps);
    expect(plugins.map((p) => p.name)).toEqual([
      "code-review",
      "incident-triage",
      "prompt-library",
    ]);
    expect(plugins[0]).toEqual({
      name: "code-review",
      version: "1.2.0",
      description: expect.stringContaining("Reviews a change"),
      author: "Platform Engineering",
      tags: ["review", "quality", "security"],
      skills: ["review"],
      runtimes: ["claude-code", "langgraph"],
    });
  });

  it("filters by runtime with - and _ equal", async () => {
    const dash = await listRegistry(deps, { runtime: "claude-code" });
    const underscore = await listRegistry(deps, { runtime: "claude_code" });
    expect(dash.map((p) => p.name)).toEqual(["code-review", "incident-triage"]);
    expect(underscore).toEqual(dash);
    expect((await listRegistry(deps, { runtime: "langgraph" })).length).toBe(3);
    expect(await listRegistry(deps, { runtime: "nothing-declares-this" })).toEqual([]);
  });
});

describe("a registry with broken entries", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "registry-test-"));
    await writePluginDir(dir, { name: "good", runtimes: [] });
    await writePluginDir(dir, { name: "renamed", manifest: "name: other\nversion: 1.0.0\n" });
    await writePluginDir(dir, { name: "broken", manifest: "name: [\n" });
    await mkdir(join(dir, "no-manifest"));
    await mkdir(join(dir, "Bad Name"));
    await writeFile(join(dir, "stray-file"), "x");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("skips them with a warning, and a plugin without runtimes matches any runtime", async () => {
    const deps = { config: testConfig({ PLUGINS_DIR: dir }), log };
    warnings.length = 0;
    expect((await listRegistry(deps)).map((p) => p.name)).toEqual(["good"]);
    expect(warnings).toHaveLength(3);
    expect((await listRegistry(deps, { runtime: "anything" })).map((p) => p.name)).toEqual([
      "good",
    ]);
  });

  it("answers an empty list when the registry directory does not exist", async () => {
    const deps = { config: testConfig({ PLUGINS_DIR: join(dir, "missing") }), log };
    expect(await listRegistry(deps)).toEqual([]);
  });
});
