import { spawn } from "node:child_process";
import { closeSync, fstatSync, openSync, readSync, writeFileSync } from "node:fs";

/** How a script ended: an exit code, or null when a signal (our kill) ended it. */
export interface ScriptExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the script could not be started at all (spawn error). */
  spawnError?: string;
}

/** A script running in its own process group. */
export interface ScriptRun {
  pid: number | undefined;
  done: Promise<ScriptExit>;
  /** SIGKILL the whole process group; a no-op once it is gone. */
  kill(): void;
}

export interface ScriptSpec {
  /** The script body; written to `scriptPath` with mode 0700 like the SSM agent's `_script.sh`. */
  script: string;
  scriptPath: string;
  cwd: string;
  env: Record<string, string>;
  stdoutPath: string;
  stderrPath: string;
}

/**
 * Every process group started in this process lifetime. Groups outlive their leader (a `sleep &`
 * left behind by a finished command), and Linux does not hand a pid out again while a group still
 * uses it as its id, so killing a remembered group id cannot hit an unrelated process group.
 */
export class ProcessGroups {
  readonly #groups = new Map<number, string>();

  /**
   * Run a script detached in a new process group, stdout/stderr going to files.
   *
   * Output goes to files rather than pipes for the reason the SSM agent does the same: a
   * background child that inherits stdout must not keep the command "running" after the shell
   * exits. A first line `#!…` is honoured (the file is executed directly); otherwise `/bin/sh`
   * reads it, which is what the agent's `sh -c _script.sh` amounts to.
   */
  start(owner: string, spec: ScriptSpec): ScriptRun {
    writeFileSync(spec.scriptPath, spec.script, { mode: 0o700 });
    writeFileSync(spec.stdoutPath, "");
    writeFileSync(spec.stderrPath, "");
    const out = openSync(spec.stdoutPath, "a");
    const err = openSync(spec.stderrPath, "a");
    const [command, args] = spec.script.startsWith("#!")
      ? [spec.scriptPath, []]
      : ["/bin/sh", [spec.scriptPath]];
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(command, args, {
        cwd: spec.cwd,
        env: spec.env,
        detached: true,
        stdio: ["ignore", out, err],
      });
    } finally {
      // The child holds its own copies; ours would only leak descriptors.
      closeSync(out);
      closeSync(err);
    }
    const pid = child.pid;
    if (pid !== undefined) this.#groups.set(pid, owner);
    const done = new Promise<ScriptExit>((resolve) => {
      child.once("error", (e) => {
        resolve({ code: null, signal: null, spawnError: e.message });
      });
      child.once("exit", (code, signal) => resolve({ code, signal }));
    });
    return { pid, done, kill: () => (pid === undefined ? undefined : killGroup(pid)) };
  }

  /** Kill every group started for `owner` (an instance id): what losing the machine does. */
  killOwner(owner: string): void {
    for (const [pgid, o] of this.#groups) {
      if (o === owner) {
        killGroup(pgid);
        this.#groups.delete(pgid);
      }
    }
  }

  killAll(): void {
    for (const pgid of this.#groups.keys()) killGroup(pgid);
    this.#groups.clear();
  }
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // ESRCH: the group is already gone, which is the outcome we wanted.
  }
}

/** Read at most `maxBytes` of a file as UTF-8; "" when it does not exist. */
export function readHead(path: string, maxBytes: number): { text: string; bytes: number } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return { text: "", bytes: 0 };
  }
  try {
    // Only the head is ever reported, so a command printing gigabytes costs no memory here.
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, maxBytes));
    const read = readSync(fd, buf, 0, buf.byteLength, 0);
    return { text: buf.subarray(0, read).toString("utf8"), bytes: size };
  } finally {
    closeSync(fd);
  }
}
