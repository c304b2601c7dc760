import { PassThrough } from "node:stream";
import type { CliIo } from "../../lib/cli/io.js";
import { runWcp } from "../../lib/cli/program.js";

export interface WcpRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (for `--json` runs). */
  json<T = Record<string, unknown>>(): T;
}

const collect = () => {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (d: Buffer) => {
    text += d.toString();
  });
  return { stream, text: () => text };
};

/** Runs `wcp ARGS…` in process against `env` (WCP_URL, WCP_TOKEN) and collects its output. */
export async function wcp(
  args: string[],
  env: Record<string, string | undefined>,
  extra: Partial<CliIo> = {},
): Promise<WcpRun> {
  const out = collect();
  const err = collect();
  const code = await runWcp(args, {
    stdout: out.stream,
    stderr: err.stream,
    env,
    cwd: "/nonexistent",
    ...extra,
  });
  // Let the streams deliver what was written.
  await new Promise((r) => setImmediate(r));
  return {
    code,
    stdout: out.text(),
    stderr: err.text(),
    json: <T>() => JSON.parse(out.text()) as T,
  };
}
