import type { Command } from "commander";
import { type components, unwrap, type WcpClient } from "../../client/client.js";
import { type CliContext, envPair, seconds } from "../context.js";
import { EXIT } from "../io.js";
import { pollUntil } from "../wait.js";

type CommandView = components["schemas"]["Command"];

// How long the POST itself waits for the command (the route allows up to its request deadline
// less a margin; 20 s stays well inside API Gateway's 30 s).
const POST_WAIT_SECONDS = 20;
const FINISHED: readonly CommandView["status"][] = [
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "undeliverable",
];
// What `timeout(1)` exits with when it killed the command: scripts already read it that way.
const TIMED_OUT_EXIT = 124;

/** A finished command's whole stream: SSM keeps only the first 24,000/8,000 characters inline. */
async function fullStream(
  client: WcpClient,
  id: string,
  commandId: string,
  stream: "stdout" | "stderr",
): Promise<string> {
  return unwrap(
    client.GET("/workspaces/{id}/commands/{commandId}/output", {
      params: { path: { id, commandId }, query: { stream } },
      parseAs: "text",
    }),
  ) as Promise<string>;
}

/** `wcp exec ID [--env K=V] [--cwd DIR] -- CMD ARGS…`: exits with the command's exit code. */
export function execCommand(program: Command, ctx: CliContext): void {
  program
    .command("exec")
    .description("Run a command on the workspace's instance and print its output")
    .argument("<id>")
    .argument("<argv...>", "the program and its arguments (after --), each passed as one word")
    .option("--env <KEY=VALUE>", "environment for the command (repeatable)", envPair)
    .option("--cwd <dir>", "working directory (default: WORKSPACE_ROOT)")
    .option("--timeout <seconds>", "kill the command after this long", seconds, 600)
    .option("--wake", "start a stopped workspace first")
    .action(
      async (
        id: string,
        argv: string[],
        opts: { env?: Record<string, string>; cwd?: string; timeout: number; wake?: boolean },
        cmd: Command,
      ) => {
        const run = ctx.start(cmd);
        const { client, out, io } = run;
        const finished = await out.waiting(`running ${argv[0]} on ${id}`, async () => {
          const first = await unwrap(
            client.POST("/workspaces/{id}/commands", {
              params: { path: { id }, ...(opts.wake && { query: { wake: "true" } }) },
              body: {
                argv,
                timeoutSeconds: Math.round(opts.timeout),
                waitSeconds: Math.min(POST_WAIT_SECONDS, opts.timeout),
                ...(opts.env && { env: opts.env }),
                ...(opts.cwd && { cwd: opts.cwd }),
              },
            }),
          );
          // Finished within the POST, or waking (nothing was sent): nothing to follow.
          if (!("commandId" in first) || "stdout" in first) return first;
          const commandId = first.commandId;
          // The command's own timeout bounds it; a minute more covers SSM reporting it.
          return pollUntil(
            `The command ${commandId}`,
            async () => {
              const now = await unwrap(
                client.GET("/workspaces/{id}/commands/{commandId}", {
                  params: { path: { id, commandId } },
                }),
              );
              return FINISHED.includes(now.status) ? now : undefined;
            },
            (opts.timeout + 60) * 1000,
            io.signal,
          );
        });
        if (!("commandId" in finished)) {
          out.result(finished, () => `${id} is waking; run the command again once it is online`);
          return;
        }
        let { stdout, stderr } = finished;
        if (finished.truncated) {
          [stdout, stderr] = await Promise.all([
            fullStream(client, id, finished.commandId, "stdout"),
            fullStream(client, id, finished.commandId, "stderr"),
          ]);
        }
        if (out.json) {
          out.result({ ...finished, stdout, stderr, truncated: false }, () => "");
        } else {
          if (stdout) io.stdout.write(stdout);
          if (stderr) io.stderr.write(stderr);
          if (finished.status !== "succeeded" && finished.status !== "failed") {
            out.note(`command ${finished.status}${finished.error ? `: ${finished.error}` : ""}`);
          }
        }
        run.exitCode =
          finished.exitCode ?? (finished.status === "timed_out" ? TIMED_OUT_EXIT : EXIT.failed);
      },
    );
}
