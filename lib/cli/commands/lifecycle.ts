import { type Command, InvalidArgumentError } from "commander";
import { type components, unwrap } from "../../client/client.js";
import { type CliContext, seconds } from "../context.js";
import { table } from "../output.js";
import { waitForStatus } from "../wait.js";
import { DEFAULT_WAIT_SECONDS, workspaceLine } from "./workspaces.js";

type Status = components["schemas"]["Workspace"]["status"];
type WaitOpts = { wait?: boolean; timeout: number };

// A record, so tsc fails here when the API gains or loses a status.
const KNOWN: Record<Status, true> = {
  provisioning: true,
  awaiting_agent: true,
  online: true,
  degraded: true,
  offline: true,
  stopping: true,
  stopped: true,
  starting: true,
  failed: true,
  removing: true,
  removed: true,
};
const STATUSES = Object.keys(KNOWN) as Status[];

function statusList(value: string): Status[] {
  const list = value.split(",").map((s) => s.trim());
  const bad = list.filter((s) => !(STATUSES as readonly string[]).includes(s));
  if (bad.length > 0) {
    throw new InvalidArgumentError(
      `unknown status ${bad.join(", ")}; one of ${STATUSES.join(", ")}`,
    );
  }
  return list as Status[];
}

const waitOptions = (cmd: Command, what: string) =>
  cmd
    .option("--wait", `wait until it is ${what}`)
    .option("--timeout <seconds>", "how long --wait waits", seconds, DEFAULT_WAIT_SECONDS);

/** `wcp status|wait|restart|stop|start|events ID`. */
export function lifecycleCommands(program: Command, ctx: CliContext): void {
  program
    .command("status")
    .description("The live status: EC2's running check and the last heartbeat")
    .argument("<id>")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const { client, out } = ctx.start(cmd);
      const live = await unwrap(
        client.GET("/workspaces/{id}/status", { params: { path: { id } } }),
      );
      out.result(live, () =>
        [
          `status:     ${live.status}`,
          `check:      ${live.check.outcome}${live.check.instanceId ? ` (${live.check.instanceId}${live.check.state ? `, ${live.check.state}` : ""})` : ""}`,
          ...(live.check.error ? [`error:      ${live.check.error}`] : []),
          `heartbeat:  ${live.heartbeatAgeSeconds === null ? "never" : `${live.heartbeatAgeSeconds} s ago`}`,
        ].join("\n"),
      );
    });

  program
    .command("wait")
    .description("Wait until the workspace is in one of the statuses (comma-separated)")
    .argument("<id>")
    .argument("<status>", "e.g. online, or stopped,failed", statusList)
    .option(
      "--timeout <seconds>",
      "give up after this long (exit 1, WAIT_TIMEOUT)",
      seconds,
      DEFAULT_WAIT_SECONDS,
    )
    .action(async (id: string, wanted: Status[], opts: { timeout: number }, cmd: Command) => {
      const { client, out, io } = ctx.start(cmd);
      const workspace = await out.waiting(`waiting for ${id} to be ${wanted.join(" or ")}`, () =>
        waitForStatus(client, id, wanted, opts.timeout * 1000, io.signal),
      );
      out.result({ workspace }, () => workspaceLine(workspace));
    });

  for (const [name, description, until] of [
    ["restart", "Terminate the instance and launch a new one", "online"],
    ["stop", "Stop the instance; the workspace keeps its disk", "stopped"],
    ["start", "Start a stopped workspace", "online"],
  ] as const) {
    const command = program.command(name).description(description).argument("<id>");
    if (name === "stop") command.option("--hibernate", "keep the memory too (needs hibernation)");
    waitOptions(command, until).action(
      async (id: string, opts: WaitOpts & { hibernate?: boolean }, cmd: Command) => {
        const { client, out, io } = ctx.start(cmd);
        const params = { params: { path: { id } } };
        const answered =
          name === "restart"
            ? await unwrap(client.POST("/workspaces/{id}/restart", params))
            : name === "stop"
              ? await unwrap(
                  client.POST("/workspaces/{id}/stop", {
                    ...params,
                    ...(opts.hibernate && { body: { hibernate: true } }),
                  }),
                )
              : await unwrap(client.POST("/workspaces/{id}/start", params));
        let workspace = answered.workspace;
        if (opts.wait && workspace.status !== until) {
          workspace = await out.waiting(`waiting for ${id} to be ${until}`, () =>
            waitForStatus(client, id, [until], opts.timeout * 1000, io.signal),
          );
        }
        out.result({ workspace }, () => workspaceLine(workspace));
      },
    );
  }

  program
    .command("events")
    .description("The workspace's status history, oldest first")
    .argument("<id>")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const { client, out } = ctx.start(cmd);
      const events: components["schemas"]["WorkspaceEvent"][] = [];
      let cursor: string | undefined;
      do {
        const page = await unwrap(
          client.GET("/workspaces/{id}/events", {
            params: { path: { id }, query: { limit: 200, ...(cursor && { cursor }) } },
          }),
        );
        events.push(...page.events);
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      out.result({ events }, () =>
        table(
          ["AT", "FROM", "TO", "ACTOR", "REASON"],
          events.map((e) => [e.at, e.from ?? "-", e.to, e.actor, e.reason]),
        ),
      );
    });
}
