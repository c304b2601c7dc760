import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { defaultSourceRegistry } from "../../../lib/plugins/sources.js";
import { type StageResult, stagePlugin } from "../../../lib/plugins/staging.js";
import { testConfig } from "../../support/context.js";
import {
  githubTarball,
  listTree,
  startTarballServer,
  type TarballServer,
} from "../../support/plugin-fixtures.js";

// github:// sources against a loopback stand-in for codeload.github.com.

let temps: string;
const servers: TarballServer[] = [];
beforeAll(async () => {
  temps = await mkdtemp(join(tmpdir(), "github-source-"));
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await rm(temps, { recursive: true, force: true });
});

async function server(handler: Parameters<typeof startTarballServer>[0]) {
  const s = await startTarballServer(handler);
  servers.push(s);
  return s;
}

async function stageGithub(
  base: string,
  raw: string,
  env: Record<string, string> = {},
): Promise<StageResult> {
  const config = testConfig({ GITHUB_TARBALL_BASE: base, ...env });
  const parsed = defaultSourceRegistry().parse(raw, config);
  if (parsed.kind !== "parsed") throw new Error(`parse failed: ${parsed.message}`);
  return stagePlugin({ config }, parsed.source, { tempParent: temps });
}

const tarball = githubTarball({ name: "from-github", version: "2.0.0", skills: ["lint"] });

describe("github:// sources", () => {
  it("fetches OWNER/REPO/tar.gz/REF under the base and strips the top-level directory", async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, { "content-type": "application/x-gzip" });
      res.end(tarball);
    });
    const result = await stageGithub(`${s.url}/codeload`, "github://acme/plugins#v2.0.0");
    expect(s.requests).toEqual([{ method: "GET", path: "/codeload/acme/plugins/tar.gz/v2.0.0" }]);
    expect(result.kind).toBe("staged");
    if (result.kind !== "staged") return;
    expect(result.plugin.manifest).toMatchObject({ name: "from-github", version: "2.0.0" });
    expect(result.plugin.files.map((f) => f.path)).toEqual([
      "README.md",
      "plugin.yaml",
      "skills/lint/SKILL.md",
    ]);
    await result.plugin.cleanup();
  });

  it("fetches the default branch (HEAD) when unpinned sources are allowed", async () => {
    const s = await server((_req, res) => res.end(tarball));
    const result = await stageGithub(s.url, "github://acme/plugins", {
      PLUGIN_ALLOW_UNPINNED: "true",
    });
    expect(s.requests[0]?.path).toBe("/acme/plugins/tar.gz/HEAD");
    if (result.kind === "staged") await result.plugin.cleanup();
    expect(result.kind).toBe("staged");
  });

  it("follows a redirect within the same origin", async () => {
    const s = await server((req, res) => {
      if (req.url?.endsWith("/tar.gz/v1")) {
        res.writeHead(302, { location: "/acme/plugins/tar.gz/refs/tags/v1" });
        res.end();
        return;
      }
      res.end(tarball);
    });
    const result = await stageGithub(s.url, "github://acme/plugins#v1");
    expect(s.requests.map((r) => r.path)).toEqual([
      "/acme/plugins/tar.gz/v1",
      "/acme/plugins/tar.gz/refs/tags/v1",
    ]);
    expect(result.kind).toBe("staged");
    if (result.kind === "staged") await result.plugin.cleanup();
  });

  it("refuses a redirect to another origin without requesting it", async () => {
    const elsewhere = await server((_req, res) => res.end(tarball));
    const s = await server((_req, res) => {
      res.writeHead(302, { location: `${elsewhere.url}/steal` });
      res.end();
    });
    const result = await stageGithub(s.url, "github://acme/plugins#v1");
    expect(result).toMatchObject({ kind: "failed", code: "SOURCE_FETCH_FAILED" });
    expect(elsewhere.requests).toEqual([]);
    expect(await listTree(temps)).toEqual([]);
  });

  it("refuses a redirect loop", async () => {
    const s = await server((req, res) => {
      res.writeHead(307, { location: req.url ?? "/" });
      res.end();
    });
    expect(await stageGithub(s.url, "github://acme/plugins#v1")).toMatchObject({
      code: "SOURCE_FETCH_FAILED",
      message: expect.stringContaining("redirects"),
    });
    expect(s.requests.length).toBe(6);
  });

  it("maps an upstream 404 to PLUGIN_NOT_FOUND and a 500 to SOURCE_FETCH_FAILED", async () => {
    const s = await server((req, res) => {
      res.writeHead(req.url?.includes("missing") ? 404 : 500);
      res.end("no");
    });
    expect(await stageGithub(s.url, "github://acme/missing#v1")).toMatchObject({
      code: "PLUGIN_NOT_FOUND",
    });
    expect(await stageGithub(s.url, "github://acme/broken#v1")).toMatchObject({
      code: "SOURCE_FETCH_FAILED",
      message: expect.stringContaining("500"),
    });
  });

  it("maps a refused connection to SOURCE_FETCH_FAILED", async () => {
    const s = await server((_req, res) => res.end());
    const url = s.url;
    await s.close();
    servers.length = 0;
    expect(await stageGithub(url, "github://acme/plugins#v1")).toMatchObject({
      code: "SOURCE_FETCH_FAILED",
    });
  });

  it("gives up at PLUGIN_FETCH_TIMEOUT_SECONDS when the server never answers", async () => {
    const s = await server(() => {
      // Never answers.
    });
    const started = performance.now();
    const result = await stageGithub(s.url, "github://acme/plugins#v1", {
      PLUGIN_FETCH_TIMEOUT_SECONDS: "1",
    });
    expect(result).toMatchObject({ kind: "failed", code: "SOURCE_FETCH_TIMEOUT" });
    expect(performance.now() - started).toBeLessThan(3000);
    expect(await listTree(temps)).toEqual([]);
  });

  it("gives up at the deadline when the body stalls halfway", async () => {
    const s = await server((_req, res) => {
      res.writeHead(200);
      res.write(tarball.subarray(0, 40));
      // …and never the rest.
    });
    const result = await stageGithub(s.url, "github://acme/plugins#v1", {
      PLUGIN_FETCH_TIMEOUT_SECONDS: "1",
    });
    expect(result).toMatchObject({ kind: "failed", code: "SOURCE_FETCH_TIMEOUT" });
    expect(await listTree(temps)).toEqual([]);
  });

  it("maps a connection cut mid-body to SOURCE_FETCH_FAILED", async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, { "content-length": String(tarball.length) });
      res.write(tarball.subarray(0, 40), () => res.destroy());
    });
    const result = await stageGithub(s.url, "github://acme/plugins#v1");
    expect(result).toMatchObject({ kind: "failed", code: "SOURCE_FETCH_FAILED" });
    expect(await listTree(temps)).toEqual([]);
  });
});
