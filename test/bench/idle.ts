import { sql } from "drizzle-orm";
import { workspaces } from "../../lib/db/schema.js";
import { runSweep } from "../../lib/sweep/run.js";
import { createWorld, round, seedFleet } from "./support.js";

export interface IdleFigures {
  n: number;
  idle: number;
  /** A run that finds nothing idle. */
  quiet: { queries: number; awsCalls: number; wallMs: number };
  /** A run that stops `idle` workspaces. */
  stopping: {
    queries: number;
    awsCalls: number;
    stopCalls: number;
    wallMs: number;
    stopped: number;
  };
}

/**
 * The idle pass over `n` online workspaces with idle auto-stop on, of which `idle` have had no
 * activity past their setting: database statements and AWS calls per run.
 */
export async function benchIdle(n: number, idle: number): Promise<IdleFigures> {
  const world = await createWorld();
  try {
    await seedFleet(world, n);
    await world.deps.db
      .update(workspaces)
      .set({ idleStopSeconds: 600, lastActivityAt: sql`now()` });
    const measure = async () => {
      await world.control("/stats/reset", { method: "POST" });
      world.queries.count = 0;
      const started = performance.now();
      const s = await runSweep(world.deps, {
        budget: { remainingMs: () => 600_000 },
        passes: ["idle"],
      });
      return {
        wallMs: round(performance.now() - started),
        queries: world.queries.count,
        awsCalls: await world.awsCalls(),
        stopCalls: await world.awsCalls("ec2:StopInstances"),
        stopped: s.passes.idle.checked,
      };
    };
    const quiet = await measure();
    await world.deps.db.execute(sql`
      update workspaces set last_activity_at = now() - interval '1 hour',
        updated_at = now() - interval '1 hour'
      where id in (select id from workspaces order by id limit ${idle})`);
    const stopping = await measure();
    if (stopping.stopped !== idle) {
      throw new Error(`bench: expected ${idle} idle stops, got ${stopping.stopped}`);
    }
    return {
      n,
      idle,
      quiet: { queries: quiet.queries, awsCalls: quiet.awsCalls, wallMs: quiet.wallMs },
      stopping,
    };
  } finally {
    await world.close();
  }
}
