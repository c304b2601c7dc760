import { spawn } from "node:child_process";
import { createApp } from "../../lib/http/app.js";
import { adminHeaders, createWorld, median, onlineWorkspace, round } from "./support.js";

export interface CommandsApiFigures {
  runs: number;
  commandMs: number;
  directMedianMs: number;
  apiMedianMs: number;
  medianOverheadMs: number;
  maxOverheadMs: number;
}

/** `sh -c 'sleep …'` straight on the instance's disk, as its own process: the baseline. */
function runDirectly(dir: string, seconds: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", `sleep ${seconds}`], { cwd: dir, stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve(performance.now() - started) : reject(new Error(`exit ${code}`)),
    );
  });
}

/**
 * What `POST /workspaces/:id/commands` with `waitSeconds` adds to a command that itself takes
 * `commandMs`: the request (auth, validation, the running check, the audit record, the ping,
 * SendCommand, polling, the record's end) against the same command run directly on the local
 * instance's disk. The local cloud's GetCommandInvocation answers InvocationDoesNotExist for
 * the first 200 ms, as SSM may.
 */
export async function benchCommandsApi(runs = 10, commandMs = 1000): Promise<CommandsApiFigures> {
  const world = await createWorld();
  const app = createApp(world.deps);
  try {
    const workspace = await onlineWorkspace(world, app);
    const dir = String((await world.control(`/instances/${workspace.instanceId}`)).dir);
    const seconds = (commandMs / 1000).toFixed(3);
    const direct: number[] = [];
    const api: number[] = [];
    for (let i = 0; i < runs; i++) {
      direct.push(await runDirectly(dir, seconds));
      const started = performance.now();
      const res = await app.request(`/workspaces/${workspace.id}/commands`, {
        method: "POST",
        headers: adminHeaders,
        body: JSON.stringify({ argv: ["sleep", seconds], waitSeconds: 10 }),
      });
      const body = (await res.json()) as { status?: string };
      if (res.status !== 200 || body.status !== "succeeded") {
        throw new Error(`bench: POST …/commands answered ${res.status}: ${JSON.stringify(body)}`);
      }
      api.push(performance.now() - started);
    }
    const directMedian = median(direct);
    const overheads = api.map((ms) => ms - directMedian);
    return {
      runs,
      commandMs,
      directMedianMs: round(directMedian),
      apiMedianMs: round(median(api)),
      medianOverheadMs: round(median(api) - directMedian),
      maxOverheadMs: round(Math.max(...overheads)),
    };
  } finally {
    await world.close();
  }
}
