import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DataDirLockedError, lockDataDir, tightenModes } from "../../lib/data-dir.js";

// The data directory's lock: a live holder refuses a second start, naming itself; a dead one's
// lock is taken over; a holder on another host (a shared mount) is never second-guessed.

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "wcp-datadir-"));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A pid that was alive a moment ago and is not any more. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], {
    encoding: "utf8",
  });
  return Number(child.stdout.trim());
}

const plantLock = (dir: string, holder: object) =>
  writeFileSync(join(dir, "lock"), JSON.stringify(holder));

describe("data directory lock", () => {
  it("creates the directory 0700 and records this process as the holder", () => {
    // Act
    const lock = lockDataDir(join(root, "data"));

    // Assess
    expect(statSync(join(root, "data")).mode & 0o777).toBe(0o700);
    const file = join(root, "data", "lock");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({
      pid: process.pid,
      host: hostname(),
    });
    lock.release();
    expect(() => statSync(file)).toThrow();
  });

  it("refuses a second lock while the holder lives, naming the directory and its pid", () => {
    // Prepare: the holder is this test's parent process, alive for the whole test.
    const dir = join(root, "data");
    lockDataDir(dir).release();
    plantLock(dir, { pid: process.ppid, host: hostname(), since: "2026-12-01T00:00:00.000Z" });

    // Act
    let refused: unknown;
    try {
      lockDataDir(dir);
    } catch (err) {
      refused = err;
    }

    // Assess
    expect(refused).toBeInstanceOf(DataDirLockedError);
    const message = (refused as Error).message;
    expect(message).toContain(dir);
    expect(message).toContain(`pid ${process.ppid}`);
    expect(message).not.toContain("\n");
    expect(JSON.parse(readFileSync(join(dir, "lock"), "utf8")).pid).toBe(process.ppid);
  });

  it("takes over the lock of a process that is gone", () => {
    // Prepare
    const dir = join(root, "data");
    lockDataDir(dir).release();
    plantLock(dir, { pid: deadPid(), host: hostname(), since: "2026-12-01T00:00:00.000Z" });

    // Act
    const lock = lockDataDir(dir);

    // Assess
    expect(JSON.parse(readFileSync(join(dir, "lock"), "utf8")).pid).toBe(process.pid);
    lock.release();
  });

  it("never takes the lock of a holder on another host", () => {
    const dir = join(root, "data");
    lockDataDir(dir).release();
    plantLock(dir, { pid: deadPid(), host: `not-${hostname()}`, since: "x" });

    expect(() => lockDataDir(dir)).toThrow(DataDirLockedError);
  });

  it("narrows what a library wrote world-readable to its owner", () => {
    // Prepare
    const dir = join(root, "pglite");
    lockDataDir(dir).release();
    const file = join(dir, "PG_VERSION");
    writeFileSync(file, "17");
    chmodSync(file, 0o666);
    chmodSync(dir, 0o755);

    // Act
    tightenModes(dir);

    // Assess
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });
});
