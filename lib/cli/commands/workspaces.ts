import type { Command } from "commander";
import { type components, unwrap } from "../../client/client.js";
import { type CliContext, envPair, seconds } from "../context.js";
import { table } from "../output.js";
import { waitForStatus } from "../wait.js";

type Workspace = components["schemas"]["Workspace"];

/** The default of every `--timeout`: a launch on EC2 takes a minute or two. */
export const DEFAULT_WAIT_SECONDS = 300;

export const workspaceLine = (w: Workspace) =>
  `${w.id}  ${w.status}  ${w.name}${w.instanceId ? `  ${w.instanceId}` : ""}`;

const detail = (w: Workspace) =>
  [
    `id:          ${w.id}`,
    `name:        ${w.name}`,
    `runtime:     ${w.runtime} (tier ${w.tier})`,
    `status:      ${w.status}`,
    `instance:    ${w.instanceId ?? "-"}`,
    ...(w.lastError ? [`last error:  ${w.lastError}`] : []),
    `created:     ${w.createdAt}`,
  ].join("\n");

// The API pages at most 200; a listing beyond this many is for a script with --json and jq.
const MAX_LISTED = 10_000;

/** `wcp workspaces list|create|get|rm`. */
export function workspaceCommands(program: Command, ctx: CliContext): void {
  const ws = program
    .command("workspaces")
    .alias("ws")
    .description("List, create, show and remove workspaces");

  ws.command("list")
    .description("List workspaces, newest first")
    .option("--status <status>", "only this status")
    .action(async (opts: { status?: Workspace["status"] }, cmd: Command) => {
      const { client, out } = ctx.start(cmd);
      const all: Workspace[] = [];
      let cursor: string | undefined;
      do {
        const page = await unwrap(
          client.GET("/workspaces", {
            params: {
              query: {
                limit: 200,
                ...(cursor && { cursor }),
                ...(opts.status && { status: opts.status }),
              },
            },
          }),
        );
        all.push(...page.workspaces);
        cursor = page.nextCursor ?? undefined;
      } while (cursor && all.length < MAX_LISTED);
      out.result({ workspaces: all }, () =>
        all.length === 0
          ? "No workspaces."
          : table(
              ["ID", "STATUS", "RUNTIME", "NAME"],
              all.map((w) => [w.id, w.status, w.runtime, w.name]),
            ),
      );
    });

  ws.command("create")
    .description("Create a workspace (instance-backed, or --runtime external)")
    .argument("<name>", "a name for people")
    .option("--runtime <runtime>", "runtime (external: the agent runs elsewhere)")
    .option("--tier <n>", "instance size tier", (v) => Number.parseInt(v, 10))
    .option("--env <KEY=VALUE>", "environment for the agent (repeatable)", envPair)
    .option("--hibernation", "launch able to hibernate")
    .option("--idempotency-key <key>", "the same key and body return the same workspace")
    .option("--wait", "wait until it is online (external: until its agent registers)")
    .option("--timeout <seconds>", "how long --wait waits", seconds, DEFAULT_WAIT_SECONDS)
    .action(
      async (
        name: string,
        opts: {
          runtime?: string;
          tier?: number;
          env?: Record<string, string>;
          hibernation?: boolean;
          idempotencyKey?: string;
          wait?: boolean;
          timeout: number;
        },
        cmd: Command,
      ) => {
        const { client, out, io } = ctx.start(cmd);
        const created = await unwrap(
          client.POST("/workspaces", {
            body: {
              name,
              ...(opts.runtime && { runtime: opts.runtime }),
              ...(opts.tier !== undefined && { tier: opts.tier }),
              ...(opts.env && { env: opts.env }),
              ...(opts.hibernation && { hibernation: true }),
            },
            ...(opts.idempotencyKey && { headers: { "idempotency-key": opts.idempotencyKey } }),
          }),
        );
        let workspace = created.workspace;
        if ("token" in created && created.token) {
          out.note(`workspace token (shown once): ${created.token}`);
        }
        if (opts.wait) {
          workspace = await out.waiting(`waiting for ${workspace.id} to be online`, () =>
            waitForStatus(client, workspace.id, ["online"], opts.timeout * 1000, io.signal),
          );
        }
        out.result({ ...created, workspace }, () => workspaceLine(workspace));
      },
    );

  ws.command("get")
    .description("Show one workspace")
    .argument("<id>")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const { client, out } = ctx.start(cmd);
      const { workspace } = await unwrap(
        client.GET("/workspaces/{id}", { params: { path: { id } } }),
      );
      out.result({ workspace }, () => detail(workspace));
    });

  ws.command("rm")
    .description("Remove a workspace: revoke its tokens, terminate its instance")
    .argument("<id>")
    .option("--wait", "wait until it is removed (the sweep finishes a slow termination)")
    .option("--timeout <seconds>", "how long --wait waits", seconds, DEFAULT_WAIT_SECONDS)
    .action(async (id: string, opts: { wait?: boolean; timeout: number }, cmd: Command) => {
      const { client, out, io } = ctx.start(cmd);
      let { workspace } = await unwrap(
        client.DELETE("/workspaces/{id}", { params: { path: { id } } }),
      );
      if (opts.wait && workspace.status !== "removed") {
        workspace = await out.waiting(`waiting for ${id} to be removed`, () =>
          waitForStatus(client, id, ["removed"], opts.timeout * 1000, io.signal),
        );
      }
      out.result({ workspace }, () => workspaceLine(workspace));
    });
}
