import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chownSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A throwaway PostgreSQL 15 server for tests: Debian's server binaries, a fresh data directory in
 * a temp dir, listening on 127.0.0.1 only, reached with SCRAM password auth as role `wcp`.
 */
export interface PostgresServer {
  /** `postgres://wcp:PW@127.0.0.1:PORT/wcp`; `wcp` may create databases (see pg-database.ts). */
  url: string;
  port: number;
  /** Fast shutdown, then deletes the temp dir. Safe to call more than once. */
  stop(): Promise<void>;
}

const BIN = "/usr/lib/postgresql/15/bin";
const ROLE = "wcp";
const DATABASE = "wcp";
const START_ATTEMPTS = 5;
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

interface OsUser {
  uid: number;
  gid: number;
}

function postgresUser(): OsUser {
  // The server refuses to run as root, so everything that touches the data dir runs as `postgres`.
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  const fields = line?.split(":");
  const uid = Number(fields?.[2]);
  const gid = Number(fields?.[3]);
  if (!line || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error("startPostgres: no `postgres` OS user in /etc/passwd");
  }
  return { uid, gid };
}

async function freeLoopbackPort(): Promise<number> {
  // Port 0 lets the kernel choose; there is a window before postgres binds it, which is why
  // startPostgres retries on "could not bind".
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      srv.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("startPostgres: could not pick a port"));
      });
    });
  });
}

/**
 * Runs a one-shot binary (initdb, psql) as `postgres`. `runuser` is used for these because its
 * watching parent only matters for signals, and these commands are never signalled.
 */
function runAsPostgres(args: string[], input?: string): void {
  try {
    execFileSync("runuser", ["-u", "postgres", "--", ...args], {
      input,
      stdio: ["pipe", "pipe", "pipe"],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", LC_ALL: "C" },
    });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`startPostgres: ${args[0]} failed: ${stderr || String(error)}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").slice(-4000);
  } catch {
    return "";
  }
}

/**
 * postmaster.pid's 8th line is the postmaster's status; "ready" means it accepts connections.
 * Polling it is cheaper than spawning pg_isready and does not depend on log wording.
 */
function isReady(dataDir: string): boolean {
  try {
    const lines = readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n");
    return lines[7]?.trim() === "ready";
  } catch {
    return false;
  }
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once("exit", () => resolve());
  });
}

interface Started {
  child: ChildProcess;
  port: number;
}

async function launch(root: string, user: OsUser, logFile: string): Promise<Started> {
  const dataDir = join(root, "data");
  let lastLog = "";
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freeLoopbackPort();
    const logFd = openSync(logFile, "a");
    chownSync(logFile, user.uid, user.gid);
    // Spawned with uid/gid rather than through runuser so that child.pid *is* the postmaster:
    // runuser's watching parent would answer our SIGINT (fast shutdown) with SIGTERM and then
    // SIGKILL two seconds later, which orphans the backends.
    const child = spawn(
      `${BIN}/postgres`,
      [
        "-D",
        dataDir,
        "-p",
        String(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        `unix_socket_directories=${join(root, "sock")}`,
        // Durability buys nothing for a throwaway server and costs a lot of test time.
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        // Parallel test files each hold a Pool (10 connections by default).
        "-c",
        "max_connections=200",
      ],
      {
        uid: user.uid,
        gid: user.gid,
        cwd: root,
        stdio: ["ignore", logFd, logFd],
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", LC_ALL: "C" },
      },
    );
    closeSync(logFd);
    let spawnError: Error | undefined;
    child.once("error", (error) => {
      spawnError = error;
    });

    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (isReady(dataDir)) return { child, port };
      if (spawnError || child.exitCode !== null || child.signalCode !== null) break;
      await sleep(20);
    }
    if (!spawnError && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGQUIT");
      await exited(child);
      throw new Error(`startPostgres: not ready after ${READY_TIMEOUT_MS} ms\n${tail(logFile)}`);
    }
    lastLog = spawnError ? String(spawnError) : tail(logFile);
    // Another process took the port between freeLoopbackPort() and the bind: try another one.
    if (!/could not bind|could not create any TCP\/IP sockets/.test(lastLog)) break;
  }
  throw new Error(`startPostgres: server did not start\n${lastLog}`);
}

/**
 * Kills the server and removes its dir if this process dies without calling stop(), even by
 * SIGKILL (where no "exit" handler runs). Detached so it outlives us; stop() kills it.
 */
function spawnWatchdog(serverPid: number, root: string): ChildProcess {
  const script = [
    `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done`,
    `kill -QUIT ${serverPid} 2>/dev/null`,
    `i=0; while kill -0 ${serverPid} 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done`,
    `kill -KILL ${serverPid} 2>/dev/null`,
    `rm -rf '${root}'`,
  ].join("\n");
  const watchdog = spawn("/bin/sh", ["-c", script], { detached: true, stdio: "ignore" });
  watchdog.unref();
  return watchdog;
}

export async function startPostgres(): Promise<PostgresServer> {
  const startedAt = Date.now();
  const user = postgresUser();
  const root = mkdtempSync(join(tmpdir(), "wcp-pg-"));
  let cleanupDir = true;
  try {
    // mkdtemp makes the dir 0700 root; the server needs to own it (and its socket dir).
    chownSync(root, user.uid, user.gid);
    mkdirSync(join(root, "sock"), { mode: 0o700 });
    chownSync(join(root, "sock"), user.uid, user.gid);

    // Trust only on the unix socket, which lives in a 0700 dir owned by postgres; TCP (the only
    // thing tests use) requires a SCRAM password.
    runAsPostgres([
      `${BIN}/initdb`,
      "-D",
      join(root, "data"),
      "-U",
      "postgres",
      "-E",
      "UTF8",
      "--locale=C",
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "--no-sync",
      "--no-instructions",
    ]);

    const logFile = join(root, "postgres.log");
    const { child, port } = await launch(root, user, logFile);
    const pid = child.pid as number;
    // A forgotten stop() must not keep the test process alive; stop() re-refs it while waiting.
    child.unref();
    const watchdog = spawnWatchdog(pid, root);
    cleanupDir = false;

    const password = randomBytes(18).toString("hex");
    const killOnExit = (): void => {
      // Best effort only: "exit" handlers must be synchronous. The watchdog finishes the job.
      try {
        process.kill(pid, "SIGQUIT");
      } catch {}
    };
    process.on("exit", killOnExit);

    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        process.off("exit", killOnExit);
        if (child.exitCode === null && child.signalCode === null) {
          child.ref();
          child.kill("SIGINT"); // fast shutdown: abort sessions, no waiting for clients
          const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
          await exited(child);
          clearTimeout(timer);
        }
        try {
          if (watchdog.pid) process.kill(watchdog.pid, "SIGKILL");
        } catch {}
        rmSync(root, { recursive: true, force: true });
      })();
      return stopping;
    };

    try {
      // The password travels on stdin rather than argv. Separate statements, because CREATE
      // DATABASE cannot run inside the implicit transaction of a multi-statement query.
      runAsPostgres(
        [
          `${BIN}/psql`,
          "-h",
          join(root, "sock"),
          "-p",
          String(port),
          "-U",
          "postgres",
          "-d",
          "postgres",
          "-X",
          "-q",
          "-v",
          "ON_ERROR_STOP=1",
          "-f",
          "-",
        ],
        [
          `CREATE ROLE ${ROLE} LOGIN CREATEDB PASSWORD '${password}';`,
          `CREATE DATABASE ${DATABASE} OWNER ${ROLE};`,
        ].join("\n"),
      );
    } catch (error) {
      await stop();
      throw error;
    }

    if (process.env.WCP_PG_TIMING) {
      console.error(`startPostgres: ready in ${Date.now() - startedAt} ms on port ${port}`);
    }
    return {
      url: `postgres://${ROLE}:${password}@127.0.0.1:${port}/${DATABASE}`,
      port,
      stop,
    };
  } catch (error) {
    if (cleanupDir) rmSync(root, { recursive: true, force: true });
    throw error;
  }
}
