import type { Command } from "commander";
import { type components, unwrap, WcpApiError, type WcpClient } from "../../client/client.js";
import { type CliContext, seconds } from "../context.js";
import { table } from "../output.js";
import { pollUntil } from "../wait.js";
import { DEFAULT_WAIT_SECONDS } from "./workspaces.js";

type WorkspacePlugin = components["schemas"]["WorkspacePlugin"];

async function pluginsOf(client: WcpClient, id: string): Promise<WorkspacePlugin[]> {
  return (await unwrap(client.GET("/workspaces/{id}/plugins", { params: { path: { id } } })))
    .plugins;
}

const failedOn = (p: WorkspacePlugin, what: string) =>
  new WcpApiError(502, {
    code: "COMMAND_FAILED",
    message: `${what} "${p.name}" failed on the instance${p.error ? `: ${p.error}` : "."}`,
  });

/** `wcp plugins list|install|uninstall ID …`. */
export function pluginCommands(program: Command, ctx: CliContext): void {
  const plugins = program.command("plugins").description("Plugins on a workspace's instance");

  plugins
    .command("list")
    .description("Plugins installed (or being installed) on the workspace")
    .argument("<id>")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const { client, out } = ctx.start(cmd);
      const list = await pluginsOf(client, id);
      out.result({ plugins: list }, () =>
        list.length === 0
          ? "No plugins."
          : table(
              ["NAME", "VERSION", "STATE", "SOURCE"],
              list.map((p) => [p.name, p.version, p.state, p.source]),
            ),
      );
    });

  plugins
    .command("install")
    .description("Install a plugin (local://NAME, NAME, or github://OWNER/REPO#REF)")
    .argument("<id>")
    .argument("<source>")
    .option("--sha256 <digest>", "refuse unless the plugin's digest is this")
    .option("--wake", "start a stopped workspace instead of refusing")
    .option(
      "--timeout <seconds>",
      "how long to wait for a slow install",
      seconds,
      DEFAULT_WAIT_SECONDS,
    )
    .action(
      async (
        id: string,
        source: string,
        opts: { sha256?: string; wake?: boolean; timeout: number },
        cmd: Command,
      ) => {
        const { client, out, io } = ctx.start(cmd);
        const answer = await out.waiting(`installing ${source} on ${id}`, async () => {
          const first = await unwrap(
            client.POST("/workspaces/{id}/plugins", {
              params: { path: { id }, ...(opts.wake && { query: { wake: "true" } }) },
              body: { source, ...(opts.sha256 && { sha256: opts.sha256 }) },
            }),
          );
          if (first.status !== "installing") return first;
          // Accepted but not done within the request: the sweep finishes it; follow the record.
          const done = await pollUntil(
            `Installing ${first.plugin}`,
            async () => {
              const p = (await pluginsOf(client, id)).find((x) => x.name === first.plugin);
              return p && p.state !== "installing" ? p : undefined;
            },
            opts.timeout * 1000,
            io.signal,
          );
          if (done.state !== "installed") throw failedOn(done, "Installing");
          return {
            status: "installed" as const,
            plugin: done.name,
            version: done.version,
            source: done.source,
            digest: done.digest,
          };
        });
        out.result(answer, () =>
          answer.status === "waking"
            ? `${id} is waking; ${answer.next}`
            : `installed ${answer.plugin} ${answer.version} (${answer.digest})`,
        );
      },
    );

  plugins
    .command("uninstall")
    .description("Uninstall a plugin (its directory and its skills)")
    .argument("<id>")
    .argument("<name>")
    .option("--wake", "start a stopped workspace instead of refusing")
    .option(
      "--timeout <seconds>",
      "how long to wait for a slow uninstall",
      seconds,
      DEFAULT_WAIT_SECONDS,
    )
    .action(
      async (id: string, name: string, opts: { wake?: boolean; timeout: number }, cmd: Command) => {
        const { client, out, io } = ctx.start(cmd);
        const answer = await out.waiting(`uninstalling ${name} from ${id}`, async () => {
          const first = await unwrap(
            client.DELETE("/workspaces/{id}/plugins/{name}", {
              params: { path: { id, name }, ...(opts.wake && { query: { wake: "true" } }) },
            }),
          );
          if (first.status !== "uninstalling") return first;
          const left = await pollUntil(
            `Uninstalling ${name}`,
            async () => {
              const p = (await pluginsOf(client, id)).find((x) => x.name === name);
              if (!p) return { gone: true as const };
              return p.state === "uninstalling" ? undefined : { gone: false as const, p };
            },
            opts.timeout * 1000,
            io.signal,
          );
          if (!left.gone) throw failedOn(left.p, "Uninstalling");
          return { status: "uninstalled" as const, plugin: name };
        });
        out.result(answer, () =>
          answer.status === "waking" ? `${id} is waking; ${answer.next}` : `uninstalled ${name}`,
        );
      },
    );
}
