import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase } from "../../support/pg-database.js";
import { type PostgresServer, startPostgres } from "../../support/postgres.js";

// `npm run db:migrate` and `npm start` as an operator runs them against a plain PostgreSQL URL:
// the real entry points in child processes, a real PostgreSQL 15 (this project has no
// globalSetup, so the file starts its own server). A wrong password or a host that is not there
// must end start-up with one readable line and exit code 2 — never a driver's stack trace, never
// the password.

const ADMIN = "e2e-admin-token-0123456789abcdef";
let server: PostgresServer;
let dir: string;
let password: string;

beforeAll(async () => {
  server = await startPostgres();
  password = decodeURIComponent(new URL(server.url).password);
  dir = mkdtempSync(join(tmpdir(), "wcp-pg-start-"));
}, 60_000);
afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

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

interface Started {
  child: ChildProcess;
  output: () => { stdout: string; stderr: string };
  exited: Promise<number | null>;
}

function start(script: string, env: Record<string, string>): Started {
  let stdout = "";
  let stderr = "";
  const child = spawn(join("node_modules", ".bin", "tsx"), [script], {
    env: { ...process.env, LOG_LEVEL: "WARN", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  return { child, output: () => ({ stdout, stderr }), exited };
}

async function run(script: string, env: Record<string, string>) {
  const started = start(script, env);
  const code = await started.exited;
  return { code, ...started.output() };
}

/** `npm start`'s settings with its own ports and state directories. */
async function localEnv(databaseUrl: string): Promise<Record<string, string>> {
  const [port, cloudPort] = [await freePort(), await freePort()];
  return {
    ADMIN_TOKEN: ADMIN,
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    LOCALCLOUD_PORT: String(cloudPort),
    LOCALCLOUD_DIR: mkdtempSync(join(dir, "cloud-")),
  };
}

const withPassword = (url: string, pw: string) => {
  const u = new URL(url);
  u.password = pw;
  return u.toString();
};

/** What an operator must see: one line, naming the setting, no stack, no password. */
function expectOneLine(stderr: string, what: RegExp) {
  const lines = stderr.split("\n").filter((l) => l.trim() !== "");
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^DATABASE_URL postgres:\/\/wcp@127\.0\.0\.1:\d+\/\w+ \(pg\): /);
  expect(lines[0]).toMatch(what);
  expect(stderr).not.toContain(password);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe("a plain postgres:// DATABASE_URL", () => {
  it("npm run db:migrate applies the migrations through node-postgres, twice without harm", async () => {
    const url = await createTestDatabase(server.url);
    for (let i = 0; i < 2; i++) {
      const result = await run("functions/migrate.ts", { DATABASE_URL: url });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain("migrations applied (pg)");
    }
  });

  it("db:migrate and npm start with a wrong password or no server stop with one line, exit code 2", async () => {
    // Prepare
    const url = await createTestDatabase(server.url);
    const nobody = new URL(url);
    nobody.port = String(await freePort());

    // Act: side by side, each in its own process.
    const [wrongPassword, refused, startWrongPassword] = await Promise.all([
      run("functions/migrate.ts", { DATABASE_URL: withPassword(url, "not-the-password") }),
      run("functions/migrate.ts", { DATABASE_URL: nobody.toString() }),
      run("functions/local.ts", await localEnv(withPassword(url, "nope-nope"))),
    ]);

    // Assess
    expect(wrongPassword.code).toBe(2);
    expectOneLine(
      wrongPassword.stderr,
      /cannot connect: password authentication failed for user "wcp" \[SQLSTATE 28P01\]$/,
    );
    expect(wrongPassword.stderr).not.toContain("not-the-password");
    expect(refused.code).toBe(2);
    expectOneLine(
      refused.stderr,
      /cannot connect: connection refused by 127\.0\.0\.1:\d+ \[ECONNREFUSED\]$/,
    );
    expect(startWrongPassword.code).toBe(2);
    expectOneLine(startWrongPassword.stderr, /password authentication failed/);
    expect(startWrongPassword.stderr).not.toContain("nope-nope");
  });

  it("npm start serves the API over it, and never prints the password", async () => {
    // Prepare
    const url = await createTestDatabase(server.url);
    const env = await localEnv(url);
    const api = `http://127.0.0.1:${env.PORT}`;
    const started = start("functions/local.ts", env);
    try {
      const deadline = Date.now() + 60_000;
      while (
        !(await fetch(`${api}/health`)
          .then((r) => r.ok)
          .catch(() => false))
      ) {
        if (started.child.exitCode !== null || Date.now() > deadline) {
          throw new Error(`npm start did not serve:\n${JSON.stringify(started.output())}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      const call = (method: string, path: string, body?: unknown, token = ADMIN) =>
        fetch(`${api}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body !== undefined && { "content-type": "application/json" }),
          },
          ...(body !== undefined && { body: JSON.stringify(body) }),
        });

      // Act
      const created = await call("POST", "/workspaces", { name: "on-pg", runtime: "external" });
      const { workspace, token } = (await created.json()) as {
        workspace: { id: string };
        token: string;
      };
      const registered = await call("POST", "/registry/register", undefined, token);
      const listed = (await (await call("GET", "/workspaces")).json()) as {
        workspaces: { id: string; status: string }[];
      };

      // Assess
      expect(created.status).toBe(201);
      expect(registered.status).toBe(200);
      expect(listed.workspaces).toEqual([
        expect.objectContaining({ id: workspace.id, status: "online" }),
      ]);
      const { stdout, stderr } = started.output();
      expect(stdout).toMatch(/Database: +postgres:\/\/wcp@127\.0\.0\.1:\d+\/\w+ \(pg\)/);
      expect(stdout + stderr).not.toContain(password);
    } finally {
      started.child.kill("SIGTERM");
      await started.exited;
    }
  });
});
