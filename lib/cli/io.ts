import type { Writable } from "node:stream";

/** What a `wcp` run may touch: passed in, so tests run it in process and read what it wrote. */
export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  /** The environment (`WCP_URL`, `WCP_TOKEN`); nothing else of it is read. */
  env: Record<string, string | undefined>;
  /** Where `.data/admin-token` is looked for (the directory `npm start` runs in). */
  cwd: string;
  /** Aborted when the user interrupts (SIGINT/SIGTERM): long waits and the agent end cleanly. */
  signal?: AbortSignal;
}

/** Exit codes that mean something to a script: 0 ok, 1 the API (or the work) failed, 2 usage. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** A usage mistake found after commander parsed the line (a bad `--env`, say): exit 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
