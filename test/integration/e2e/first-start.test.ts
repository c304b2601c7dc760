import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, runEntry, type Spawned, spawnEntry } from "../../support/spawned.js";
import { waitFor } from "../../support/wait.js";

// `npm start` as a new user meets it: a bad setting, a busy port, a second start on the same data
// directory each end it with one line naming what to change and exit status 2 — never a stack;
// what it writes is its owner's only; LOG_LEVEL takes any letter case and DEBUG says what the
// sweep decided and how each AWS call ended.

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "wcp-first-start-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Non-empty stderr lines; a stack trace would show as "    at …" lines. */
const linesOf = (stderr: string) => stderr.split("\n").filter((l) => l.trim() !== "");

async function ports() {
  return { PORT: String(await freePort()), LOCALCLOUD_PORT: String(await freePort()) };
}

describe("start-up errors", () => {
  it("a bad setting is one line naming the variable and what it accepts, exit 2", async () => {
    // Act
    const result = await runEntry("functions/local.ts", {
      ...(await ports()),
      DATA_DIR: join(root, "bad"),
      PORT: "eighty",
      IDLE_ACTION: "nap",
      SWEEP_INTERVAL_SECONDS: "0",
    });

    // Assess
    expect(result.code).toBe(2);
    expect(linesOf(result.stderr).sort()).toEqual([
      "IDLE_ACTION: must be one of stop, hibernate",
      "PORT: must be a port number 1-65535",
      "SWEEP_INTERVAL_SECONDS: must be a whole number of seconds, at least 1",
    ]);
  });

  it("an empty PORT is refused, not served on a random port", async () => {
    const result = await runEntry("functions/local.ts", {
      ...(await ports()),
      DATA_DIR: join(root, "empty-port"),
      PORT: "",
    });

    expect(result.code).toBe(2);
    expect(linesOf(result.stderr)).toEqual(["PORT: must be a port number 1-65535"]);
    expect(result.stdout).not.toContain("serving at");
  });

  it("a port in use is one line naming the variable to change", async () => {
    // Prepare: something else listens on the API's port.
    const env = { ...(await ports()), DATA_DIR: join(root, "busy") };
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(Number(env.PORT), "127.0.0.1", r));

    try {
      // Act
      const result = await runEntry("functions/local.ts", env);

      // Assess
      expect(result.code).toBe(2);
      expect(linesOf(result.stderr)).toEqual([
        `PORT ${env.PORT} is already in use on 127.0.0.1; set PORT to a free port`,
      ]);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  }, 60_000);
});

describe("a running npm start", () => {
  let first: Spawned;
  let dataDir: string;
  let api: string;

  beforeAll(async () => {
    dataDir = join(root, "data");
    const env = await ports();
    api = `http://127.0.0.1:${env.PORT}`;
    // No ADMIN_TOKEN: the token is generated into the data directory, as on a fresh clone.
    first = spawnEntry("functions/local.ts", {
      ...env,
      ADMIN_TOKEN: undefined,
      DATA_DIR: dataDir,
      LOG_LEVEL: "debug",
      SWEEP_INTERVAL_SECONDS: "1",
    });
    await waitFor(
      async () => {
        if (first.child.exitCode !== null) throw new Error(`exited: ${first.stderr()}`);
        return (await fetch(`${api}/health`)).ok ? true : undefined;
      },
      60_000,
      100,
    ).catch((err: Error) => {
      throw new Error(`npm start did not serve: ${first.stderr()}${first.stdout().slice(-2000)}`, {
        cause: err,
      });
    });
  }, 90_000);
  afterAll(async () => first?.stop());

  it("locks its data directory: a second start exits 2 naming the directory and the holder", async () => {
    // Prepare
    const holder = JSON.parse(readFileSync(join(dataDir, "lock"), "utf8")) as { pid: number };

    // Act: the same data directory, other ports.
    const second = await runEntry("functions/local.ts", { ...(await ports()), DATA_DIR: dataDir });

    // Assess
    expect(second.code).toBe(2);
    const lines = linesOf(second.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`DATA_DIR ${dataDir} is in use by pid ${holder.pid}`);
    expect(second.stdout).not.toContain("serving at");
    // The first one still serves.
    expect((await fetch(`${api}/health`)).ok).toBe(true);
  }, 60_000);

  it("keeps everything it writes to its owner: directories 0700, files 0600", () => {
    const loose: string[] = [];
    for (const entry of readdirSync(dataDir, { withFileTypes: true, recursive: true })) {
      const path = join(entry.parentPath, entry.name);
      const mode = statSync(path).mode & 0o777;
      const wanted = entry.isDirectory() ? 0o700 : 0o600;
      if (entry.isDirectory() || entry.isFile()) {
        if (mode !== wanted) loose.push(`${mode.toString(8)} ${path}`);
      }
    }
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(loose).toEqual([]);
    // The admin token, PGlite's files and the local cloud's state are all there.
    expect(statSync(join(dataDir, "admin-token")).isFile()).toBe(true);
    expect(statSync(join(dataDir, "pglite", "PG_VERSION")).isFile()).toBe(true);
    expect(statSync(join(dataDir, "localcloud", "state.json")).isFile()).toBe(true);
  });

  it("takes LOG_LEVEL in lower case and logs the sweep's choices and AWS calls' outcomes at DEBUG", async () => {
    type Line = Record<string, unknown> & { level?: string; message?: string };
    const debugLines = () =>
      first
        .stdout()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Line)
        .filter((l) => l.level === "DEBUG");

    const seen = await waitFor(
      () => {
        const lines = debugLines();
        const pass = lines.find((l) => l.message === "sweep pass" && l.pass === "orphans");
        const call = lines.find((l) => l.message === "aws call" && l.outcome === "ok");
        return pass && call ? { pass, call } : undefined;
      },
      20_000,
      100,
    );

    expect(seen.pass).toMatchObject({ checked: expect.any(Number), changed: 0, errors: 0 });
    expect(seen.call).toMatchObject({ awsService: "EC2", operation: expect.any(String) });
    // What a DEBUG line may never hold: the admin token, or any call's input.
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    const debugText = JSON.stringify(debugLines());
    expect(debugText).not.toContain(token);
  }, 30_000);

  it("gives the data directory back when it stops", async () => {
    await first.stop();
    // tsx may exit before the process it runs has finished its exit handlers.
    await waitFor(() => (existsSync(join(dataDir, "lock")) ? undefined : true), 10_000, 50);
    expect(existsSync(join(dataDir, "lock"))).toBe(false);
  });
});
