import type { ServerResponse } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { workspacePlugins } from "../../../lib/db/schema.js";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";
import {
  githubTarball,
  startTarballServer,
  type TarballServer,
} from "../../support/plugin-fixtures.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// SSRF through github:// sources (SPEC §7: "redirects only within that host"). A loopback
// server stands in for GITHUB_TARBALL_BASE and answers redirects to places the control plane
// must not go; a second loopback server, which would serve a perfectly good tarball, counts
// what reaches it. Every target is 127.0.0.1 or localhost: nothing here leaves the machine.

let c: ComputeCloud;
let t: TestContext;
let base: TarballServer;
let victim: TarballServer;

const tarball = githubTarball({ name: "gh-plugin", version: "1.0.0" });
const portOf = (s: TarballServer) => new URL(s.url).port;

/** Where each repository of the stand-in codeload redirects to. */
function redirectFor(repo: string, path: string): [number, string] | undefined {
  const elsewhere = `${victim.url}/acme/ok/tar.gz/v1`;
  const redirects: Record<string, [number, string]> = {
    "same-origin": [302, "/acme/ok/tar.gz/v1"],
    "to-port": [302, elsewhere],
    "to-host": [302, `http://localhost:${portOf(victim)}/acme/ok/tar.gz/v1`],
    // The same server under another host name is another origin.
    "to-own-port-by-name": [302, `http://localhost:${portOf(base)}/acme/ok/tar.gz/v1`],
    "to-file": [302, "file:///etc/passwd"],
    "to-userinfo": [302, `http://127.0.0.1:${portOf(base)}@localhost:${portOf(victim)}/acme/ok`],
    "protocol-relative": [302, `//localhost:${portOf(victim)}/acme/ok/tar.gz/v1`],
    "via-301": [301, elsewhere],
    "via-303": [303, elsewhere],
    "via-307": [307, elsewhere],
    "via-308": [308, elsewhere],
    unparsable: [302, "http://[::1"],
    loop: [302, path],
    ping: [302, "/acme/pong/tar.gz/v1"],
    pong: [302, "/acme/ping/tar.gz/v1"],
  };
  return redirects[repo];
}

/** The stand-in codeload: `ok` serves the tarball, the others redirect or are missing. */
function codeload(path: string, res: ServerResponse): void {
  const repo = path.split("/")[2] ?? "";
  const redirect = redirectFor(repo, path);
  if (repo === "ok") {
    res.writeHead(200, { "content-type": "application/x-gzip" });
    res.end(tarball);
  } else if (redirect) {
    res.writeHead(redirect[0], { location: redirect[1] });
    res.end();
  } else {
    res.writeHead(404);
    res.end();
  }
}

beforeAll(async () => {
  c = await startComputeCloud({ bootDelayMs: 20, ssmOnlineDelayMs: 20 });
  victim = await startTarballServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/x-gzip" });
    res.end(tarball);
  });
  base = await startTarballServer((req, res) => codeload(req.url ?? "", res));
  t = await createTestContext({
    env: { GITHUB_TARBALL_BASE: base.url, PLUGIN_FETCH_TIMEOUT_SECONDS: "5" },
    aws: c.clients({ maxAttempts: 2, requestTimeoutMs: 3_000 }),
  });
});
afterAll(async () => {
  await t?.close();
  await base?.close();
  await victim?.close();
  await c?.close();
});
beforeEach(async () => {
  await t.reset();
  await c.resetStats();
  base.requests.length = 0;
  victim.requests.length = 0;
});

const REFUSED = [
  "to-port",
  "to-host",
  "to-own-port-by-name",
  "to-file",
  "to-userinfo",
  "protocol-relative",
  "via-301",
  "via-303",
  "via-307",
  "via-308",
  "unparsable",
  "loop",
  "ping",
];

async function externalWorkspace() {
  const res = await t.admin("POST", "/workspaces", { name: "agent", runtime: "external" });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { workspace: { id: string }; token: string };
  return { id: body.workspace.id, token: body.token };
}

async function runningWorkspace() {
  const res = await t.admin("POST", "/workspaces", { name: "target" });
  expect(res.status).toBe(201);
  const ws = ((await res.json()) as { workspace: { id: string; instanceId: string } }).workspace;
  await waitFor(async () => {
    const v = await c.instance(ws.instanceId);
    return v.state === "running" && v.ssmPingStatus === "Online" ? v : undefined;
  });
  return ws;
}

const download = (ws: { id: string; token: string }, repo: string) =>
  t.as(
    ws.token,
    "GET",
    `/workspaces/${ws.id}/plugins/gh-plugin/download?source=${encodeURIComponent(`github://acme/${repo}#v1`)}`,
  );

async function codeOf(res: Response): Promise<string | null> {
  if (res.status < 400) return null;
  return ((await res.json()) as { error: { code: string } }).error.code;
}

/** Requests the stand-in saw that were meant for the host-name alias of itself. */
const aliasHits = () => base.requests.filter((r) => r.path === "/acme/ok/tar.gz/v1").length;

describe(`github:// redirects over ${dbKind()}`, () => {
  it("follows a redirect within GITHUB_TARBALL_BASE's origin (the control)", async () => {
    // Prepare
    const ext = await externalWorkspace();
    const ws = await runningWorkspace();

    // Act
    const pulled = await download(ext, "same-origin");
    const installed = await t.admin("POST", `/workspaces/${ws.id}/plugins`, {
      source: "github://acme/same-origin#v1",
    });

    // Assess
    expect(pulled.status).toBe(200);
    expect(pulled.headers.get("x-plugin-name")).toBe("gh-plugin");
    expect(installed.status).toBe(200);
    expect(await c.calls("ssm:SendCommand")).toBe(1);
    expect(victim.requests).toEqual([]);
  });

  it("download with the workspace's own token: every redirect away from the origin is refused unrequested", async () => {
    // Prepare
    const ext = await externalWorkspace();

    // Act
    const answers: Record<string, [number, string | null]> = {};
    for (const repo of REFUSED) {
      const res = await download(ext, repo);
      answers[repo] = [res.status, await codeOf(res)];
    }

    // Assess
    expect(answers).toEqual(
      Object.fromEntries(REFUSED.map((r) => [r, [502, "SOURCE_FETCH_FAILED"]])),
    );
    expect(victim.requests).toEqual([]);
    expect(aliasHits()).toBe(0);
    // Loops are cut off: the loop and the ping-pong cost at most six requests each.
    const looped = base.requests.filter((r) => /\/acme\/(loop|ping|pong)\//.test(r.path));
    expect(looped.length).toBeLessThanOrEqual(12);
  });

  it("install as admin: every redirect away from the origin is refused, nothing staged, nothing sent", async () => {
    // Prepare
    const ws = await runningWorkspace();
    await c.resetStats();

    // Act
    const answers: Record<string, [number, string | null]> = {};
    for (const repo of REFUSED) {
      const res = await t.admin("POST", `/workspaces/${ws.id}/plugins`, {
        source: `github://acme/${repo}#v1`,
      });
      answers[repo] = [res.status, await codeOf(res)];
    }

    // Assess
    expect(answers).toEqual(
      Object.fromEntries(REFUSED.map((r) => [r, [502, "SOURCE_FETCH_FAILED"]])),
    );
    expect(victim.requests).toEqual([]);
    expect(aliasHits()).toBe(0);
    expect(await c.calls("s3:PutObject")).toBe(0);
    expect(await c.calls("ssm:SendCommand")).toBe(0);
    expect(await t.opened.db.select().from(workspacePlugins)).toEqual([]);
  });
});
