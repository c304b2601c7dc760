import {
  chmodSync,
  closeSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";

/**
 * The local mode's state directory: private to its owner and held by one process at a time.
 *
 * Why a pid file created with `O_EXCL` rather than proper-lockfile: proper-lockfile's staleness is
 * a modification time it refreshes on a timer, so a process that is merely paused (a suspended
 * laptop, a debugger, SIGSTOP) loses its lock and a second start takes the directory from under
 * it; and it records no holder, so the refusal could not say who holds it. A pid file names the
 * holder, and the kernel says whether that pid is alive: on the same host, a lock is stale only
 * when its process is gone. (A pid reused by another process after a crash reads as alive; the
 * refusal names the file to remove.) On another host (a shared mount) the lock is never taken
 * as stale.
 */

/** Who holds a data directory. */
export interface LockHolder {
  pid: number;
  host: string;
  since: string;
}

/** Another live process holds the data directory. The message is the one line to print. */
export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
  constructor(
    readonly dir: string,
    readonly holder: LockHolder | undefined,
    readonly lockFile: string,
  ) {
    super(
      holder
        ? `DATA_DIR ${dir} is in use by pid ${holder.pid} on ${holder.host} (since ${holder.since}); stop it, or set DATA_DIR to another directory`
        : `DATA_DIR ${dir} is in use (${lockFile} is being written); stop the other start, or set DATA_DIR to another directory`,
    );
  }
}

/** A held lock; {@link DataDirLock.release} gives the directory back (also done at exit). */
export interface DataDirLock {
  readonly dir: string;
  release(): void;
}

/** How long a lock file may stay empty (its holder between creating and writing it). */
const WRITE_GRACE_MS = 1_000;

/**
 * Creates `dir` owner-only (0700; an existing one is narrowed to 0700, which also shields files
 * an earlier version left readable) and locks it for this process.
 * @throws DataDirLockedError when a live process holds it.
 */
export function lockDataDir(dir: string): DataDirLock {
  const abs = resolve(dir);
  mkdirSync(abs, { recursive: true, mode: 0o700 });
  chmodSync(abs, 0o700);
  const lockFile = join(abs, "lock");
  const mine: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lockFile, "wx", 0o600);
      writeSync(fd, `${JSON.stringify(mine)}\n`);
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const held = readHolder(lockFile);
    if (attempt >= 3 || !isStale(held)) {
      throw new DataDirLockedError(abs, held.kind === "holder" ? held.holder : undefined, lockFile);
    }
    removeStale(lockFile, held);
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    // Only our own lock: a lock file some other process wrote is not ours to remove.
    const held = readHolder(lockFile);
    if (held.kind === "holder" && held.holder.pid === mine.pid && held.holder.host === mine.host) {
      rmSync(lockFile, { force: true });
    }
  };
  process.once("exit", release);
  return { dir: abs, release };
}

/**
 * Narrows every file under `dir` to 0600 and every directory to 0700. For what a library creates
 * with explicit modes the process umask does not reach: PGlite lays its database files down
 * world-writable (0666, set by chmod, not by create), though what it creates later honours the
 * umask. The data directory's own 0700 already keeps others out; this keeps a copied or moved
 * directory private too.
 */
export function tightenModes(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isDirectory()) chmodSync(path, 0o700);
    else if (entry.isFile()) chmodSync(path, 0o600);
  }
  chmodSync(dir, 0o700);
}

type Held =
  | { kind: "holder"; holder: LockHolder }
  | { kind: "unwritten"; ageMs: number }
  | { kind: "gone" };

function readHolder(lockFile: string): Held {
  let text: string;
  try {
    text = readFileSync(lockFile, "utf8");
  } catch {
    return { kind: "gone" };
  }
  try {
    const h = JSON.parse(text) as Partial<LockHolder>;
    if (typeof h.pid === "number" && typeof h.host === "string") {
      return { kind: "holder", holder: { pid: h.pid, host: h.host, since: String(h.since) } };
    }
  } catch {}
  try {
    return { kind: "unwritten", ageMs: Date.now() - statSync(lockFile).mtimeMs };
  } catch {
    return { kind: "gone" };
  }
}

function isStale(held: Held): boolean {
  switch (held.kind) {
    case "gone":
      return true;
    case "unwritten":
      return held.ageMs >= WRITE_GRACE_MS;
    case "holder":
      return held.holder.host === hostname() && !isAlive(held.holder.pid);
    default: {
      const unreachable: never = held;
      throw new Error(`unknown lock state ${String(unreachable)}`);
    }
  }
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, as another user's process.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Moves the stale lock aside, then checks that what it moved is the stale one: two starts that
 * both found it stale must not remove each other's new lock. A live lock moved by mistake is put
 * back.
 */
function removeStale(lockFile: string, stale: Held): void {
  const aside = `${lockFile}.stale-${process.pid}`;
  try {
    renameSync(lockFile, aside);
  } catch {
    return; // gone already: someone else removed it
  }
  const moved = readHolder(aside);
  const same =
    stale.kind !== "holder" ||
    (moved.kind === "holder" &&
      moved.holder.pid === stale.holder.pid &&
      moved.holder.host === stale.holder.host);
  if (same) rmSync(aside, { force: true });
  else renameSync(aside, lockFile);
}
