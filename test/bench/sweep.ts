import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { and, eq, inArray, ne } from "drizzle-orm";
import { workspaces } from "../../lib/db/schema.js";
import { runSweep } from "../../lib/sweep/run.js";
import { createWorld, round, seedFleet, type World } from "./support.js";

export interface SweepFigures {
  n: number;
  latencyMs: number;
  product: { awsCalls: number; queries: number; wallMs: number; offline: number };
  baseline: { awsCalls: number; queries: number; wallMs: number; offline: number };
}

/**
 * The design this product replaces: one DescribeInstances per workspace, in a loop, and one
 * UPDATE per workspace found stopped.
 */
async function baselineLiveness(world: World): Promise<number> {
  const { db, aws } = world.deps;
  const rows = await db
    .select()
    .from(workspaces)
    .where(
      and(inArray(workspaces.status, ["online", "degraded"]), ne(workspaces.runtime, "external")),
    );
  let offline = 0;
  for (const row of rows) {
    const out = await aws.ec2.send(
      new DescribeInstancesCommand({ InstanceIds: [row.instanceId ?? ""] }),
    );
    const state = out.Reservations?.[0]?.Instances?.[0]?.State?.Name;
    if (state === "stopped" || state === "terminated") {
      await db.update(workspaces).set({ status: "offline" }).where(eq(workspaces.id, row.id));
      offline++;
    }
  }
  return offline;
}

async function resetStatuses(world: World) {
  await world.deps.db.update(workspaces).set({ status: "online" });
}

/** Liveness over `n` instance-backed workspaces, 1% crashed, `latencyMs` added to every EC2 call. */
export async function benchSweep(n: number, latencyMs = 10): Promise<SweepFigures> {
  const world = await createWorld();
  try {
    const rows = await seedFleet(world, n);
    const crashed = rows.filter((_, i) => i % 100 === 7);
    for (const r of crashed)
      await world.control(`/instances/${r.instanceId}/crash`, { method: "POST" });
    await world.control("/faults", {
      method: "POST",
      body: { service: "ec2", action: "*", latencyMs },
    });

    const measure = async (work: () => Promise<number>) => {
      await resetStatuses(world);
      await world.control("/stats/reset", { method: "POST" });
      world.queries.count = 0;
      const started = performance.now();
      const offline = await work();
      return {
        wallMs: round(performance.now() - started),
        awsCalls: await world.awsCalls("ec2:DescribeInstances"),
        queries: world.queries.count,
        offline,
      };
    };
    const product = await measure(async () => {
      const s = await runSweep(world.deps, {
        budget: { remainingMs: () => 600_000 },
        passes: ["liveness"],
      });
      return s.passes.liveness.changed;
    });
    const baseline = await measure(() => baselineLiveness(world));
    if (product.offline !== crashed.length || baseline.offline !== crashed.length) {
      throw new Error(
        `bench: expected ${crashed.length} offline, got ${product.offline}/${baseline.offline}`,
      );
    }
    return { n, latencyMs, product, baseline };
  } finally {
    await world.close();
  }
}
