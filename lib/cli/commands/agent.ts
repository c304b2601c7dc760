import { type Command, InvalidArgumentError } from "commander";
import { runAgent } from "../../agent/agent.js";
import type { PluginWanted } from "../../agent/pull.js";
import { WcpApiError } from "../../client/client.js";
import { type CliContext, seconds } from "../context.js";
import { EXIT, UsageError } from "../io.js";

// The control plane's defaults (PLUGIN_MAX_BYTES, PLUGIN_MAX_FILES): an agent takes what the
// control plane would stage, no more.
const DEFAULT_MAX_BYTES = 100 * 1024 * 1024;
const DEFAULT_MAX_FILES = 10_000;
// A third of REMOTE_STALE_AFTER_SECONDS' default (90 s): two lost beats do not mark it offline.
const DEFAULT_INTERVAL_SECONDS = 30;

function pluginSpec(value: string, previous: PluginWanted[] = []): PluginWanted[] {
  const at = value.indexOf("=");
  const want =
    at > 0
      ? { name: value.slice(0, at), source: value.slice(at + 1) }
      : { name: value.replace(/^local:\/\//, "") };
  if (!want.name) throw new InvalidArgumentError("takes NAME or NAME=SOURCE");
  return [...previous, want];
}

const positiveInt = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError("not a positive integer");
  return n;
};

/** `wcp agent`: the agent loop of an external workspace, until Ctrl-C. */
export function agentCommand(program: Command, ctx: CliContext): void {
  program
    .command("agent")
    .description(
      "Run as an external workspace's agent: register, pull plugins, heartbeat (WCP_TOKEN is the workspace's token)",
    )
    .requiredOption("--workspace <id>", "the external workspace's id")
    .option("--plugin <NAME|NAME=SOURCE>", "a plugin to pull (repeatable)", pluginSpec, [])
    .option("--dir <dir>", "where plugins are unpacked, one directory each", "./plugins.d")
    .option("--interval <seconds>", "heartbeat period", seconds, DEFAULT_INTERVAL_SECONDS)
    .option("--busy-file <path>", "report busy while this file exists (idle auto-stop waits)")
    .option("--max-bytes <n>", "cap on a plugin's unpacked bytes", positiveInt, DEFAULT_MAX_BYTES)
    .option("--max-files <n>", "cap on a plugin's entries", positiveInt, DEFAULT_MAX_FILES)
    .action(
      async (
        opts: {
          workspace: string;
          plugin: PluginWanted[];
          dir: string;
          interval: number;
          busyFile?: string;
          maxBytes: number;
          maxFiles: number;
        },
        cmd: Command,
      ) => {
        const run = ctx.start(cmd);
        const { io, out, target } = run;
        if (target.tokenFrom === ".data/admin-token") {
          throw new UsageError(
            "wcp agent needs the workspace's own token: set WCP_TOKEN or --token.",
          );
        }
        const log = (line: string) =>
          out.json
            ? io.stdout.write(
                `${JSON.stringify({ at: new Date().toISOString(), message: line })}\n`,
              )
            : io.stderr.write(`${new Date().toISOString()} wcp agent: ${line}\n`);
        const stop = new AbortController();
        io.signal?.addEventListener("abort", () => stop.abort(), { once: true });
        const exit = await runAgent(
          {
            baseUrl: target.url,
            token: target.token,
            workspaceId: opts.workspace,
            intervalMs: opts.interval * 1000,
            plugins: opts.plugin,
            pluginDir: opts.dir,
            maxBytes: opts.maxBytes,
            maxFiles: opts.maxFiles,
            ...(opts.busyFile && { busyFile: opts.busyFile }),
            log,
          },
          stop.signal,
        );
        if (exit.kind === "refused") {
          throw new WcpApiError(0, {
            code: exit.code as WcpApiError["code"],
            message: exit.message,
            hint: "The token was revoked or the workspace removed; a new token comes from POST /workspaces/{id}/tokens.",
          });
        }
        log("stopped");
        run.exitCode = EXIT.ok;
      },
    );
}
