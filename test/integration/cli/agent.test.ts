import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pullPlugin } from "../../../lib/agent/pull.js";
import { runWcp } from "../../../lib/cli/program.js";
import type { components } from "../../../lib/client/client.js";
import { pluginDigest, walkTree } from "../../../lib/plugins/digest.js";
import { createTestContext, type TestContext } from "../../support/context.js";
import { type ServedApp, serveTestApp } from "../../support/served-app.js";
import { waitFor } from "../../support/wait.js";

// `wcp agent` for an external workspace against the app on a loopback port: it registers,
// pulls a plugin with its digest verified, heartbeats with its activity, and outlives a control
// plane that is gone for 10 s (the server stopped, then listening again on the same port).

type Workspace = components["schemas"]["Workspace"];

const OUTAGE_MS = 10_000;
let t: TestContext;
let served: ServedApp;
let dir: string;

beforeAll(async () => {
  t = await createTestContext({ env: { PLUGINS_DIR: resolve("plugins") } });
  served = await serveTestApp(t);
  dir = mkdtempSync(join(tmpdir(), "wcp-agent-"));
});
afterAll(async () => {
  await served?.close();
  await t?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function createExternal(name: string) {
  const res = await t.admin("POST", "/workspaces", { name, runtime: "external" });
  expect(res.status).toBe(201);
  return (await res.json()) as { workspace: Workspace; token: string };
}

const workspaceOf = async (id: string) =>
  ((await (await t.admin("GET", `/workspaces/${id}`)).json()) as { workspace: Workspace })
    .workspace;

/** The digest the control plane states for a plugin's download. */
async function servedDigest(id: string, token: string, name: string) {
  const res = await t.as(token, "GET", `/workspaces/${id}/plugins/${name}/download`);
  expect(res.status).toBe(200);
  return res.headers.get("x-plugin-digest");
}

describe("wcp agent", () => {
  it("registers, pulls a plugin with its digest verified, heartbeats busy/idle, and survives a 10 s outage", async () => {
    // Prepare
    const { workspace, token } = await createExternal("agent");
    const pluginDir = join(dir, "plugins");
    const busyFile = join(dir, "busy");
    const stderr = new PassThrough();
    let log = "";
    stderr.on("data", (d: Buffer) => {
      log += d.toString();
    });
    const stop = new AbortController();
    let settled = false;

    // Act: the agent, as `wcp agent` runs it.
    const agent = runWcp(
      [
        "agent",
        "--workspace",
        workspace.id,
        "--plugin",
        "code-review",
        "--dir",
        pluginDir,
        "--interval",
        "0.3",
        "--busy-file",
        busyFile,
      ],
      {
        stdout: new PassThrough(),
        stderr,
        env: { WCP_URL: served.url, WCP_TOKEN: token },
        cwd: dir,
        signal: stop.signal,
      },
    ).finally(() => {
      settled = true;
    });

    // Assess: registered (awaiting_agent → online) and the plugin unpacked, digest verified.
    await waitFor(
      async () => ((await workspaceOf(workspace.id)).status === "online" ? true : undefined),
      10_000,
    );
    await waitFor(async () => (log.includes("pulled code-review") ? true : undefined), 10_000);
    const tree = await walkTree(join(pluginDir, "code-review"), { maxBytes: 1e8, maxEntries: 1e4 });
    if (tree.kind !== "walked") throw new Error(tree.message);
    expect(await pluginDigest(join(pluginDir, "code-review"), tree.files)).toBe(
      await servedDigest(workspace.id, token, "code-review"),
    );
    expect(existsSync(join(pluginDir, "code-review", "plugin.yaml"))).toBe(true);

    // Heartbeats go on, and a busy one is recorded as activity.
    const beat = (await workspaceOf(workspace.id)).lastHeartbeatAt;
    await waitFor(async () => {
      const now = (await workspaceOf(workspace.id)).lastHeartbeatAt;
      return now !== beat ? true : undefined;
    }, 5_000);
    expect((await workspaceOf(workspace.id)).lastActivityAt).toBeNull();
    writeFileSync(busyFile, "");
    await waitFor(
      async () => ((await workspaceOf(workspace.id)).lastActivityAt ? true : undefined),
      5_000,
    );

    // The control plane goes away for 10 s, then listens again on the same port.
    await served.stop();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    expect(settled).toBe(false);
    const beforeRestart = (await workspaceOf(workspace.id)).lastHeartbeatAt as string;
    await served.restart();
    await waitFor(async () => (log.includes("reachable again") ? true : undefined), 10_000);
    await waitFor(async () => {
      const now = (await workspaceOf(workspace.id)).lastHeartbeatAt as string;
      return now > beforeRestart ? true : undefined;
    }, 5_000);

    // One line when it went away, one when it came back: not one per failed beat.
    expect(log.match(/unreachable/g)).toHaveLength(1);
    expect(log.match(/reachable again/g)).toHaveLength(1);
    expect(settled).toBe(false);

    // Ctrl-C ends it cleanly.
    stop.abort();
    expect(await agent).toBe(0);
  }, 60_000);

  it("refuses a download whose files do not hash to the digest the control plane sent", async () => {
    // Prepare: a fetch that changes X-Plugin-Digest on the way.
    const { workspace, token } = await createExternal("tampered");
    const tampering: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      const headers = new Headers(res.headers);
      headers.set("x-plugin-digest", "0".repeat(64));
      return new Response(res.body, { status: res.status, headers });
    };
    const into = join(dir, "tampered");

    // Act
    const result = await pullPlugin(
      { name: "code-review" },
      {
        baseUrl: served.url,
        token,
        workspaceId: workspace.id,
        dir: into,
        maxBytes: 1e8,
        maxFiles: 1e4,
        fetch: tampering,
      },
    );

    // Assess: refused, and nothing left in the plugin directory.
    expect(result).toMatchObject({ kind: "refused", code: "INTEGRITY_MISMATCH" });
    expect(existsSync(join(into, "code-review"))).toBe(false);
  });

  it("stops with exit 1 and the code when the token is refused", async () => {
    const stderr = new PassThrough();
    let text = "";
    stderr.on("data", (d: Buffer) => {
      text += d.toString();
    });
    const code = await runWcp(["agent", "--workspace", "00000000-0000-4000-8000-000000000000"], {
      stdout: new PassThrough(),
      stderr,
      env: { WCP_URL: served.url, WCP_TOKEN: "not-a-token" },
      cwd: dir,
    });
    expect(code).toBe(1);
    expect(text).toMatch(/error UNAUTHORIZED/);
  });
});
