import { type Command, InvalidArgumentError } from "commander";
import { createWcpClient, type WcpClient } from "../client/client.js";
import type { CliIo } from "./io.js";
import { Output } from "./output.js";
import { resolveTarget, type Target } from "./target.js";

/** The global options every command takes. */
export interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

/** What a command's action gets: its client, its output, and where to put its exit code. */
export interface Run {
  io: CliIo;
  client: WcpClient;
  target: Target;
  out: Output;
  /** Set by a command whose exit code is not 0/1 by the usual rule (`wcp exec`). */
  exitCode?: number;
}

/** Shared by every command of one `wcp` run; `run.exitCode` is read when the action ends. */
export interface CliContext {
  io: CliIo;
  /** The run of the command being executed, built from its global options. */
  start(cmd: Command): Run;
  current?: Run;
}

export function createContext(io: CliIo): CliContext {
  const ctx: CliContext = {
    io,
    start(cmd) {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const out = new Output(io, g.json === true);
      const target = resolveTarget(g, io.env, io.cwd);
      const run: Run = {
        io,
        out,
        target,
        client: createWcpClient({ baseUrl: target.url, token: target.token }),
      };
      ctx.current = run;
      return run;
    },
  };
  return ctx;
}

/** Parses a positive number of seconds (`--timeout`); commander reports a bad one as usage. */
export function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`not a positive number of seconds: ${value}`);
  return n;
}

/** `KEY=VALUE` pairs (`--env`, repeatable) into a map. */
export function envPair(
  value: string,
  previous: Record<string, string> = {},
): Record<string, string> {
  const at = value.indexOf("=");
  if (at <= 0) throw new InvalidArgumentError(`takes KEY=VALUE, not "${value.slice(0, 100)}"`);
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
}
