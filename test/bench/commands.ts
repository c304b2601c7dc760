import { RunInstancesCommand } from "@aws-sdk/client-ec2";
import { pingStatuses, runCommand } from "../../lib/compute/commands.js";
import { program, sh } from "../../lib/compute/script.js";
import { defaultImageId } from "../../lib/localcloud/index.js";
import { createWorld, median, round } from "./support.js";

export interface CommandFigures {
  runs: number;
  commandMs: number;
  medianWallMs: number;
  medianOverheadMs: number;
  maxOverheadMs: number;
}

/** The cost runCommand adds on top of a command that itself takes `commandMs`. */
export async function benchCommands(runs = 10, commandMs = 1000): Promise<CommandFigures> {
  const world = await createWorld();
  try {
    const out = await world.deps.aws.ec2.send(
      new RunInstancesCommand({
        ImageId: defaultImageId,
        InstanceType: "t3.small",
        MinCount: 1,
        MaxCount: 1,
      }),
    );
    const instanceId = out.Instances?.[0]?.InstanceId ?? "";
    for (let i = 0; i < 100; i++) {
      const ping = (await pingStatuses(world.deps, [instanceId])).get(instanceId);
      if (ping?.kind === "known" && ping.status === "Online") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const seconds = (commandMs / 1000).toFixed(3);
    const walls: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      const result = await runCommand(world.deps, instanceId, program(sh`sleep ${seconds}`), {
        timeoutSeconds: 30,
      });
      if (result.kind !== "finished" || !result.result.ok)
        throw new Error(`bench: command failed: ${JSON.stringify(result)}`);
      walls.push(performance.now() - started);
    }
    const overheads = walls.map((w) => w - commandMs);
    return {
      runs,
      commandMs,
      medianWallMs: round(median(walls)),
      medianOverheadMs: round(median(overheads)),
      maxOverheadMs: round(Math.max(...overheads)),
    };
  } finally {
    await world.close();
  }
}
