import { eq } from "drizzle-orm";
import { workspaces } from "../../lib/db/schema.js";
import { deadlineIn } from "../../lib/deadline.js";
import type { Deps } from "../../lib/deps.js";
import { reconcileInstanceEvent } from "../../lib/ec2events/reconcile.js";
import { createWorld, median, round, seedFleet } from "./support.js";

export interface Ec2EventFigures {
  crashes: number;
  /** Crash (the control API's answer) → the row `offline`, through the event path only. */
  medianMs: number;
  maxMs: number;
  /** DescribeInstances calls per crash: the running check of the one instance. */
  describePerCrash: number;
  /** The local cloud's delivery delay and jitter the figures include. */
  deliveryMs: { delay: number; jitter: number };
}

/**
 * `crashes` running, online workspaces, crashed one after another through the local cloud's
 * control API; each is timed until its row reads `offline`. No sweep runs at all (an interval
 * longer than the bench), so only the EC2 state-change event can have acted: the local cloud
 * delivers it after its default delay (500 ms plus up to 250 ms), the handler runs the running
 * check and liveness's transition. Rows are polled every 5 ms.
 */
export async function benchEc2Events(crashes: number): Promise<Ec2EventFigures> {
  let deps: Deps | undefined;
  const world = await createWorld(
    {},
    {
      eventTargets: [
        async (event) => {
          if (!deps) throw new Error("not ready");
          await reconcileInstanceEvent(deps, event, { deadline: deadlineIn(27_000) });
        },
      ],
    },
  );
  deps = world.deps;
  try {
    const fleet = await seedFleet(world, crashes);
    // The launches' own events (pending, running) are delivered and handled first.
    const settle = async () => {
      for (;;) {
        const stats = await world.control("/events/stats");
        if (stats.pending === 0) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await new Promise((r) => setTimeout(r, 1_000));
    await settle();
    await world.control("/stats/reset", { method: "POST" });

    const times: number[] = [];
    for (const ws of fleet) {
      await world.control(`/instances/${ws.instanceId}/crash`, { method: "POST" });
      const started = performance.now();
      for (;;) {
        const [row] = await world.deps.db
          .select({ status: workspaces.status })
          .from(workspaces)
          .where(eq(workspaces.id, ws.id));
        if (row?.status === "offline") break;
        if (performance.now() - started > 30_000)
          throw new Error("bench: crash never went offline");
        await new Promise((r) => setTimeout(r, 5));
      }
      times.push(performance.now() - started);
    }
    await settle();
    return {
      crashes,
      medianMs: round(median(times)),
      maxMs: round(Math.max(...times)),
      describePerCrash: round((await world.awsCalls("ec2:DescribeInstances")) / crashes, 2),
      deliveryMs: { delay: 500, jitter: 250 },
    };
  } finally {
    await world.close();
  }
}
