import { runWcp } from "../lib/cli/program.js";

// `wcp`: the CLI's process wiring — its argv, environment and streams; Ctrl-C ends a wait or
// the agent cleanly (the second one exits at once).

const interrupted = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted.signal.aborted) process.exit(130);
    interrupted.abort();
  });
}

process.exitCode = await runWcp(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  signal: interrupted.signal,
});
