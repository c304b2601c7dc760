import { Command, CommanderError } from "commander";
import { WcpApiError } from "../client/client.js";
import { VERSION } from "../version.js";
import { agentCommand } from "./commands/agent.js";
import { execCommand } from "./commands/exec.js";
import { lifecycleCommands } from "./commands/lifecycle.js";
import { pluginCommands } from "./commands/plugins.js";
import { workspaceCommands } from "./commands/workspaces.js";
import { createContext } from "./context.js";
import { type CliIo, EXIT, UsageError } from "./io.js";
import { Output } from "./output.js";

const HELP_AFTER = `
Environment:
  WCP_URL    the API (default http://127.0.0.1:8787, where \`npm start\` serves)
  WCP_TOKEN  the admin token (default for a local URL: .data/admin-token, as \`npm start\` keeps it)

Exit codes: 0 ok, 1 the API answered an error (its code is printed) or the work failed, 2 usage.
\`wcp exec\` exits with the command's own exit code.`;

/**
 * One `wcp` run: parses `argv` (the words after `wcp`), runs the command against the API and
 * resolves to the process's exit code — 0 ok, 1 an API error (printed with its code), 2 a usage
 * error (commander's included), or `wcp exec`'s command's own code. Never exits the process.
 */
export async function runWcp(argv: readonly string[], io: CliIo): Promise<number> {
  const ctx = createContext(io);
  const program = new Command("wcp")
    .description("The workspace-control-plane CLI")
    .version(VERSION)
    .option("--url <url>", "the API's base URL (WCP_URL)")
    .option("--token <token>", "the bearer token (WCP_TOKEN)")
    .option("--json", "print JSON for scripts (no spinner, errors as the API's body)")
    .addHelpText("after", HELP_AFTER)
    .showHelpAfterError("(wcp --help lists the commands)")
    // Settings the subcommands inherit: so must come before .command().
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  workspaceCommands(program, ctx);
  lifecycleCommands(program, ctx);
  pluginCommands(program, ctx);
  execCommand(program, ctx);
  agentCommand(program, ctx);

  try {
    await program.parseAsync([...argv], { from: "user" });
    return ctx.current?.exitCode ?? EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end through here too, with exit code 0.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof UsageError) {
      io.stderr.write(`wcp: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof WcpApiError) {
      (ctx.current?.out ?? new Output(io, argv.includes("--json"))).failure(err);
      return EXIT.failed;
    }
    if (io.signal?.aborted) return EXIT.failed;
    throw err;
  }
}
