import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type Spawned, spawnEntry } from "../../support/spawned.js";
import { waitFor } from "../../support/wait.js";

// The README's walk-throughs, pasted in one go as a user would, against a real `npm start`: every
// step must find the state it needs (each waits for it), and nothing may be left behind in the
// directory they start from (the checkout: files with live tokens, a downloaded archive).
// Only the ports differ from what the README says, and the sweep runs every second.

let root: string;
let checkout: string;
let started: Spawned;
let ports: { api: number; cloud: number };

/** The `sh` blocks of the README's "Walk-through" sections, in order, as one script. */
function walkthroughScript(): string {
  const readme = readFileSync("README.md", "utf8");
  const sections = readme.split(/^(?=## )/m).filter((s) => s.startsWith("## Walk-through"));
  const blocks = sections.flatMap((s) =>
    [...s.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]),
  );
  return blocks
    .join("\n")
    .replaceAll("127.0.0.1:8787", `127.0.0.1:${ports.api}`)
    .replaceAll("127.0.0.1:4566", `127.0.0.1:${ports.cloud}`);
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "wcp-readme-"));
  // The user's shell stands in the checkout, where `npm start` keeps ./.data.
  checkout = join(root, "checkout");
  mkdirSync(checkout);
  ports = { api: await freePort(), cloud: await freePort() };
  started = spawnEntry("functions/local.ts", {
    ADMIN_TOKEN: undefined,
    DATA_DIR: join(checkout, ".data"),
    PORT: String(ports.api),
    LOCALCLOUD_PORT: String(ports.cloud),
    SWEEP_INTERVAL_SECONDS: "1",
    LOG_LEVEL: "WARN",
  });
  await waitFor(
    async () => {
      if (started.child.exitCode !== null) throw new Error(`exited: ${started.stderr()}`);
      return (await fetch(`http://127.0.0.1:${ports.api}/health`)).ok ? true : undefined;
    },
    60_000,
    100,
  );
}, 90_000);

afterAll(async () => {
  await started?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe("README walk-throughs", () => {
  it("run pasted in one go, each step waiting for its state, leaving nothing in the checkout", async () => {
    // Prepare
    const script = walkthroughScript();
    expect(script).toContain('cd "$(mktemp -d)"');

    // Act
    const shell = spawn("bash", ["-e", "-o", "pipefail", "-c", script], {
      cwd: checkout,
      env: { PATH: process.env.PATH, HOME: root, TMPDIR: root },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    shell.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    shell.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise<number | null>((r) => shell.once("exit", r));

    // Assess: every step succeeded (set -e), the promised states came, the checkout is clean.
    expect(code, out.slice(-4000)).toBe(0);
    expect(out).toContain('"outcome":"stopped"');
    expect(out).toContain('"outcome":"transient"');
    expect(out).toContain('"stoppedReason": "idle"');
    expect(out).toContain('"status":"installed"');
    expect(readdirSync(checkout)).toEqual([".data"]);
  }, 240_000);
});
