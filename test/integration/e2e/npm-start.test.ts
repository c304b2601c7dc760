import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// `npm start` as a user runs it: the real entry point, PGlite on disk, the embedded local cloud,
// the sweep on its timer. Only the ports, the state directories and the interval are chosen here.
// The interval is longer than the file takes, so every status change below comes through the
// local cloud's EC2 state-change events, the path `npm start` wires to the product (the sweep's
// own passes are covered by test/integration/db/sweep.test.ts and lifecycle.test.ts).

const ADMIN = "e2e-admin-token-0123456789abcdef";
const SWEEP_SECONDS = 3600;
let child: ChildProcess;
let dir: string;
let api: string;
let cloud: string;
let output = "";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function call(method: string, path: string, body?: unknown, token = ADMIN) {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined && { "content-type": "application/json" }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function until<T>(what: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await what().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out; server output:\n${output.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "wcp-e2e-"));
  const [port, cloudPort] = [await freePort(), await freePort()];
  api = `http://127.0.0.1:${port}`;
  cloud = `http://127.0.0.1:${cloudPort}`;
  child = spawn(join("node_modules", ".bin", "tsx"), ["functions/local.ts"], {
    env: {
      ...process.env,
      ADMIN_TOKEN: ADMIN,
      PORT: String(port),
      LOCALCLOUD_PORT: String(cloudPort),
      LOCALCLOUD_DIR: join(dir, "localcloud"),
      DATABASE_URL: `file://${join(dir, "pglite")}`,
      SWEEP_INTERVAL_SECONDS: String(SWEEP_SECONDS),
      LOG_LEVEL: "WARN",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  await until(async () => ((await fetch(`${api}/health`)).ok ? true : undefined), 60_000);
}, 90_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("npm start", () => {
  it("prints the URL and the admin token", () => {
    expect(output).toContain(`serving at ${api}`);
    expect(output).toContain(ADMIN);
  });

  it("launches an instance-backed workspace, brings it online, and marks it offline after a crash, through EC2 events", async () => {
    // Prepare
    const created = await call("POST", "/workspaces", { name: "e2e" });
    expect(created.status).toBe(201);
    const { id, instanceId } = created.body.workspace as { id: string; instanceId: string };
    expect(instanceId).toMatch(/^i-[0-9a-f]{17}$/);

    // The instance's running event brings it online (readiness: EC2 running, SSM Online).
    await until(async () => {
      const ws = await call("GET", `/workspaces/${id}`);
      return (ws.body.workspace as { status: string }).status === "online" ? true : undefined;
    }, 15_000);
    const live = await call("GET", `/workspaces/${id}/status`);
    expect((live.body.check as { outcome: string }).outcome).toBe("running");

    // Act: crash the instance through the local cloud's control API.
    expect(
      (await fetch(`${cloud}/_localcloud/instances/${instanceId}/crash`, { method: "POST" })).ok,
    ).toBe(true);

    // Assess: offline through the crash's event; no sweep ran. The bound is generous on purpose
    // (shared CI machines); how fast it happens is the benchmark's business, not this test's.
    await until(async () => {
      const ws = await call("GET", `/workspaces/${id}`);
      return (ws.body.workspace as { status: string }).status === "offline" ? true : undefined;
    }, 10_000);
    const events = await call("GET", `/workspaces/${id}/events`);
    const history = (events.body.events as { to: string; actor: string }[]).map((e) => [
      e.to,
      e.actor,
    ]);
    expect(history.slice(-2)).toEqual([
      ["online", "ec2-event:readiness"],
      ["offline", "ec2-event:liveness"],
    ]);
  });

  it("installs a sample plugin into a running instance and uninstalls it", async () => {
    // Prepare: an online instance-backed workspace.
    const created = await call("POST", "/workspaces", { name: "plugins" });
    const { id, instanceId } = created.body.workspace as { id: string; instanceId: string };
    await until(async () => {
      const ws = await call("GET", `/workspaces/${id}`);
      return (ws.body.workspace as { status: string }).status === "online" ? true : undefined;
    }, 15_000);
    const { instances } = (await (await fetch(`${cloud}/_localcloud/instances`)).json()) as {
      instances: { id: string; dir: string }[];
    };
    const root = instances.find((i) => i.id === instanceId)?.dir ?? "";
    expect(root).not.toBe("");

    // Act + Assess: install puts the files and the skill on the instance's disk.
    const installed = await call("POST", `/workspaces/${id}/plugins`, {
      source: "local://code-review",
    });
    expect(installed.status).toBe(200);
    expect(installed.body).toMatchObject({ status: "installed", plugin: "code-review" });
    expect(existsSync(join(root, "configs/plugins/code-review/plugin.yaml"))).toBe(true);
    expect(existsSync(join(root, "configs/skills/review/SKILL.md"))).toBe(true);
    const listed = await call("GET", `/workspaces/${id}/plugins`);
    expect((listed.body.plugins as { name: string; state: string }[])[0]).toMatchObject({
      name: "code-review",
      state: "installed",
    });

    const removed = await call("DELETE", `/workspaces/${id}/plugins/code-review`);
    expect(removed.status).toBe(200);
    expect(existsSync(join(root, "configs/plugins/code-review"))).toBe(false);
    expect(existsSync(join(root, "configs/skills/review"))).toBe(false);
  });

  it("runs the README's commands: argv, a script, a long output in full, the audit list", async () => {
    // Prepare: an instance-backed workspace whose SSM agent is online.
    const created = await call("POST", "/workspaces", { name: "commands" });
    const { id } = created.body.workspace as { id: string };
    await until(async () => {
      const ws = await call("GET", `/workspaces/${id}`);
      return (ws.body.workspace as { status: string }).status === "online" ? true : undefined;
    }, 15_000);

    // Act
    const argv = await call("POST", `/workspaces/${id}/commands`, {
      argv: ["sh", "-c", 'echo "$GREETING from $PWD"'],
      env: { GREETING: "hello" },
      cwd: "/tmp",
    });
    const script = await call("POST", `/workspaces/${id}/commands`, {
      script: "echo one\nfalse\necho never",
    });
    const long = await call("POST", `/workspaces/${id}/commands`, { script: "seq 1 10000" });
    const output = await fetch(`${api}/workspaces/${id}/commands/${long.body.commandId}/output`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    const audit = await call("GET", `/workspaces/${id}/commands?limit=5`);

    // Assess
    expect(argv).toMatchObject({
      status: 200,
      body: { status: "succeeded", stdout: "hello from /tmp\n" },
    });
    expect(script.body).toMatchObject({ status: "failed", exitCode: 1, stdout: "one\n" });
    expect(long.body).toMatchObject({ status: "succeeded", truncated: true });
    expect(String(long.body.stdout)).toHaveLength(24_000);
    expect((await output.text()).length).toBe(48_894);
    const commands = audit.body.commands as { kind: string; envKeys: string[] }[];
    expect(commands.map((c) => c.kind)).toEqual(["script", "script", "argv"]);
    expect(commands[2]?.envKeys).toEqual(["GREETING"]);
    expect(JSON.stringify(audit.body)).not.toContain("hello");
  });

  it("serves the external-workspace flow", async () => {
    const created = await call("POST", "/workspaces", { name: "laptop", runtime: "external" });
    expect(created.status).toBe(201);
    const token = created.body.token as string;
    const reg = await call("POST", "/registry/register", undefined, token);
    expect(reg).toEqual({ status: 200, body: { status: "online" } });
  });
});
