import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { PassThrough } from "node:stream";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { components } from "../../../lib/client/client.js";
import { ADMIN_TOKEN, createTestContext, type TestContext } from "../../support/context.js";
import { type ServedApp, serveTestApp } from "../../support/served-app.js";
import { wcp } from "../../support/wcp-run.js";
import { type ComputeCloud, startComputeCloud } from "../compute/cloud.js";

// Every `wcp` command against the app served on a loopback port (as `npm start` serves it),
// over the local cloud, with the sweep on a short timer. The CLI runs in process; the bin
// itself is spawned once for its exit codes.

type Workspace = components["schemas"]["Workspace"];

let c: ComputeCloud;
let t: TestContext;
let served: ServedApp;
let env: Record<string, string>;

beforeAll(async () => {
  c = await startComputeCloud();
  t = await createTestContext({
    env: {
      PLUGINS_DIR: resolve("plugins"),
      LAUNCH_GRACE_SECONDS: "1",
      INSTALL_SYNC_WAIT_SECONDS: "5",
    },
    aws: c.clients({ maxAttempts: 2, requestTimeoutMs: 5_000 }),
  });
  served = await serveTestApp(t);
  env = { WCP_URL: served.url, WCP_TOKEN: ADMIN_TOKEN };
});
afterAll(async () => {
  await served?.close();
  await t?.close();
  await c?.close();
});

/** An online instance-backed workspace, through the CLI. */
async function createOnline(name: string): Promise<Workspace> {
  const run = await wcp(["--json", "workspaces", "create", name, "--wait", "--timeout", "20"], env);
  expect(run.code, run.stderr + run.stdout).toBe(0);
  return run.json<{ workspace: Workspace }>().workspace;
}

describe("wcp", () => {
  it("creates, lists, gets, shows status and events, and removes a workspace", async () => {
    // Act
    const ws = await createOnline("cli-basics");
    const list = await wcp(["workspaces", "list"], env);
    const listed = await wcp(["--json", "workspaces", "list", "--status", "online"], env);
    const got = await wcp(["workspaces", "get", ws.id], env);
    const status = await wcp(["--json", "status", ws.id], env);
    const events = await wcp(["events", ws.id], env);
    const removed = await wcp(
      ["--json", "workspaces", "rm", ws.id, "--wait", "--timeout", "20"],
      env,
    );

    // Assess
    expect(ws.status).toBe("online");
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${ws.id}\\s+online\\s+langgraph\\s+cli-basics$`, "m"));
    expect(listed.json<{ workspaces: Workspace[] }>().workspaces.map((w) => w.id)).toContain(ws.id);
    expect(got.stdout).toContain(`status:      online`);
    expect(status.json<{ check: { outcome: string } }>().check.outcome).toBe("running");
    expect(events.stdout).toMatch(/provisioning\s+online\s+sweep:readiness/);
    expect(removed.code).toBe(0);
    expect(removed.json<{ workspace: Workspace }>().workspace.status).toBe("removed");
  });

  it("exec prints the command's output and exits with its exit code; long output comes in full", async () => {
    // Prepare
    const ws = await createOnline("cli-exec");

    // Act
    const failing = await wcp(
      [
        "exec",
        ws.id,
        "--env",
        "WHO=world",
        "--",
        "sh",
        "-c",
        'echo "hello $WHO"; echo oops >&2; exit 3',
      ],
      env,
    );
    const long = await wcp(
      ["exec", ws.id, "--", "sh", "-c", "yes 0123456789 | head -c 30000"],
      env,
    );
    const json = await wcp(["--json", "exec", ws.id, "--", "echo", "a b", "$(c)"], env);

    // Assess
    expect(failing.code).toBe(3);
    expect(failing.stdout).toBe("hello world\n");
    expect(failing.stderr).toContain("oops");
    expect(long.code).toBe(0);
    // More than the 24,000 characters SSM keeps inline: the rest came from …/output.
    expect(long.stdout.length).toBe(30_000);
    expect(json.code).toBe(0);
    expect(json.json<{ stdout: string; exitCode: number; status: string }>()).toMatchObject({
      stdout: "a b $(c)\n",
      exitCode: 0,
      status: "succeeded",
    });
  });

  it("installs, lists and uninstalls a plugin", async () => {
    // Prepare
    const ws = await createOnline("cli-plugins");

    // Act
    const installed = await wcp(["--json", "plugins", "install", ws.id, "code-review"], env);
    const listed = await wcp(["plugins", "list", ws.id], env);
    const uninstalled = await wcp(["plugins", "uninstall", ws.id, "code-review"], env);
    const after = await wcp(["--json", "plugins", "list", ws.id], env);

    // Assess
    expect(installed.code, installed.stdout + installed.stderr).toBe(0);
    expect(installed.json()).toMatchObject({ status: "installed", plugin: "code-review" });
    expect(listed.stdout).toMatch(/^code-review\s+\S+\s+installed\s+local:\/\/code-review$/m);
    expect(uninstalled.code).toBe(0);
    expect(uninstalled.stdout).toBe("uninstalled code-review\n");
    expect(after.json()).toEqual({ plugins: [] });
  });

  it("stop, start and restart wait for the state they ask for; wait waits for a status", async () => {
    // Prepare
    const ws = await createOnline("cli-power");

    // Act + Assess
    const stopped = await wcp(["--json", "stop", ws.id, "--wait", "--timeout", "20"], env);
    expect(stopped.code, stopped.stdout + stopped.stderr).toBe(0);
    expect(stopped.json<{ workspace: Workspace }>().workspace.status).toBe("stopped");

    const started = await wcp(["start", ws.id], env);
    expect(started.code).toBe(0);
    const waited = await wcp(["--json", "wait", ws.id, "online", "--timeout", "20"], env);
    expect(waited.code).toBe(0);
    expect(waited.json<{ workspace: Workspace }>().workspace.status).toBe("online");

    const restarted = await wcp(["--json", "restart", ws.id, "--wait", "--timeout", "20"], env);
    expect(restarted.code).toBe(0);
    const after = restarted.json<{ workspace: Workspace }>().workspace;
    expect(after.status).toBe("online");
    expect(after.generation).toBe(ws.generation + 1);
  });

  it("shows a spinner with the elapsed time on a terminal, and nothing on stderr with --json", async () => {
    // Prepare: a stderr that says it is a terminal.
    const ws = await createOnline("cli-tty");
    const terminal = () => {
      const stream = Object.assign(new PassThrough(), {
        isTTY: true,
        columns: 80,
        cursorTo: () => true,
        moveCursor: () => true,
        clearLine: () => true,
      });
      let text = "";
      stream.on("data", (d: Buffer) => {
        text += d.toString();
      });
      return { stream, text: () => text };
    };
    const human = terminal();
    const json = terminal();

    // Act
    const a = await wcp(["wait", ws.id, "online"], env, { stderr: human.stream });
    const b = await wcp(["--json", "wait", ws.id, "online"], env, { stderr: json.stream });

    // Assess
    expect(a.code).toBe(0);
    expect(human.text()).toMatch(new RegExp(`waiting for ${ws.id} to be online \\(\\d+ s\\)`));
    expect(b.code).toBe(0);
    expect(json.text()).toBe("");
  });

  it("an API error exits 1 and prints its code; with --json the API's error body", async () => {
    const id = "00000000-0000-4000-8000-000000000000";

    const human = await wcp(["workspaces", "get", id], env);
    const json = await wcp(["--json", "status", id], env);
    const external = await wcp(
      ["--json", "workspaces", "create", "ext", "--runtime", "external"],
      env,
    );
    const extId = external.json<{ workspace: Workspace }>().workspace.id;
    const refused = await wcp(["restart", extId], env);
    const timedOut = await wcp(["wait", extId, "online", "--timeout", "1"], env);
    const badToken = await wcp(["workspaces", "list"], { ...env, WCP_TOKEN: "wrong" });

    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(/^error WORKSPACE_NOT_FOUND: /);
    expect(human.stdout).toBe("");
    expect(json.code).toBe(1);
    expect(json.json()).toMatchObject({ error: { code: "WORKSPACE_NOT_FOUND" } });
    expect(external.json()).toMatchObject({ token: expect.any(String) });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error EXTERNAL_RUNTIME: /);
    expect(timedOut.code).toBe(1);
    expect(timedOut.stderr).toMatch(/^error WAIT_TIMEOUT: /);
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toMatch(/^error UNAUTHORIZED: /);
  });

  it("a usage error exits 2: unknown command, missing argument, bad option value, no token", async () => {
    const runs = await Promise.all([
      wcp(["frobnicate"], env),
      wcp(["workspaces", "get"], env),
      wcp(["wait", "x", "onlien"], env),
      wcp(["exec", "x", "--timeout", "soon", "--", "true"], env),
      wcp(["workspaces", "list"], { WCP_URL: "https://wcp.example.com" }),
    ]);
    expect(runs.map((r) => r.code)).toEqual([2, 2, 2, 2, 2]);
    expect(runs[2]?.stderr).toContain("unknown status onlien");
    expect(runs[4]?.stderr).toContain("WCP_TOKEN");
    expect((await wcp(["--help"], env)).code).toBe(0);
  });

  it("the bin runs from the repository root: --help exits 0, a usage error 2, an API error 1", async () => {
    const run = promisify(execFile);
    const bin = (args: string[]) =>
      run("node", ["bin/wcp.js", ...args], { env: { ...process.env, ...env } }).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
    const [help, usage, api] = await Promise.all([
      bin(["--help"]),
      bin(["workspaces", "get"]),
      bin(["workspaces", "get", "00000000-0000-4000-8000-000000000000"]),
    ]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("wcp exec");
    expect(usage.code).toBe(2);
    expect(api.code).toBe(1);
    expect(api.stderr).toContain("error WORKSPACE_NOT_FOUND");
  }, 60_000);
});
