import { DescribeInstanceInformationCommand } from "@aws-sdk/client-ssm";
import { workspaces } from "../../lib/db/schema.js";
import { runSweep } from "../../lib/sweep/run.js";
import { createWorld, round, seedFleet, type World } from "./support.js";

export interface ReadinessFigures {
  n: number;
  product: { pingCalls: number; describeCalls: number; wallMs: number; online: number };
  /** One DescribeInstanceInformation per row, the design this pass replaces; null: not run. */
  baseline: { pingCalls: number; wallMs: number } | null;
}

/** The replaced design: one DescribeInstanceInformation per provisioning row. */
async function baselinePings(world: World): Promise<void> {
  const rows = await world.deps.db.select({ instanceId: workspaces.instanceId }).from(workspaces);
  for (const row of rows) {
    await world.deps.aws.ssm.send(
      new DescribeInstanceInformationCommand({
        Filters: [{ Key: "InstanceIds", Values: [row.instanceId ?? ""] }],
      }),
    );
  }
}

/**
 * Readiness over `n` provisioning workspaces whose instances run with their SSM agents Online:
 * AWS calls per pass (DescribeInstances for the running check, DescribeInstanceInformation for
 * the pings). The baseline runs only when `withBaseline` (it costs one call per row).
 */
export async function benchReadiness(n: number, withBaseline: boolean): Promise<ReadinessFigures> {
  const world = await createWorld();
  try {
    await seedFleet(world, n);
    await world.deps.db.update(workspaces).set({ status: "provisioning" });
    // Let every agent register with SSM (the world's agents come online within ~10 ms).
    await new Promise((r) => setTimeout(r, 200));

    const measure = async (work: () => Promise<void>) => {
      await world.control("/stats/reset", { method: "POST" });
      const started = performance.now();
      await work();
      return round(performance.now() - started);
    };
    let online = 0;
    const wallMs = await measure(async () => {
      const s = await runSweep(world.deps, {
        budget: { remainingMs: () => 600_000 },
        passes: ["readiness"],
      });
      online = s.passes.readiness.changed;
    });
    const product = {
      pingCalls: await world.awsCalls("ssm:DescribeInstanceInformation"),
      describeCalls: await world.awsCalls("ec2:DescribeInstances"),
      wallMs,
      online,
    };
    if (online !== n) throw new Error(`bench: expected ${n} online, got ${online}`);
    let baseline: ReadinessFigures["baseline"] = null;
    if (withBaseline) {
      const baseWall = await measure(() => baselinePings(world));
      baseline = {
        pingCalls: await world.awsCalls("ssm:DescribeInstanceInformation"),
        wallMs: baseWall,
      };
    }
    return { n, product, baseline };
  } finally {
    await world.close();
  }
}
