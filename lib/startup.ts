import { ConfigError } from "./config.js";
import { DataDirLockedError } from "./data-dir.js";
import { DatabaseStartError } from "./db/start.js";

/**
 * How a local start (`npm start`, `npm run db:migrate`) tells the operator it cannot run: one line
 * per problem, each naming the setting to change, and exit status 2 — never a stack trace, which
 * would bury the one fact they need under the code's internals.
 */

/** A port the process must listen on is taken (or not ours to take). */
export class PortUnavailableError extends Error {
  override name = "PortUnavailableError";
  constructor(variable: string, port: number, host: string, code: string) {
    super(
      code === "EADDRINUSE"
        ? `${variable} ${port} is already in use on ${host}; set ${variable} to a free port`
        : `${variable} ${port} cannot be listened on at ${host} (${code}); set ${variable} to another port`,
    );
  }
}

/**
 * For a listen's rejection: a port in use or refused becomes a {@link PortUnavailableError}
 * naming `variable`; anything else is rethrown as it is.
 */
export const portProblem =
  (variable: string, port: number, host: string) =>
  (err: unknown): never => {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL") {
      throw new PortUnavailableError(variable, port, host, code);
    }
    throw err;
  };

/** The lines to print for a start-up error the operator can fix; undefined for a bug. */
export function startErrorLines(err: unknown): string[] | undefined {
  if (err instanceof ConfigError) return err.problems.map((p) => `${p.variable}: ${p.message}`);
  if (
    err instanceof DatabaseStartError ||
    err instanceof DataDirLockedError ||
    err instanceof PortUnavailableError
  ) {
    return [err.message];
  }
  return undefined;
}

/**
 * For `functions/`: prints a start-up error's lines to stderr and exits with status 2; anything
 * else is a bug and is rethrown with its stack.
 */
export function exitOnStartError(err: unknown): never {
  const lines = startErrorLines(err);
  if (lines === undefined) throw err;
  console.error(lines.join("\n"));
  process.exit(2);
}
