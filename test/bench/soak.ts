import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { eq, inArray, sql } from "drizzle-orm";
import { workspaceEvents, workspaces } from "../../lib/db/schema.js";
import { createApp } from "../../lib/http/app.js";
import { runSweep } from "../../lib/sweep/run.js";
import { ADMIN_TOKEN } from "../support/context.js";
import { writeSoakSection } from "./report.js";
import { createWorld, seedFleet } from "./support.js";

// `npm run soak`: 1,000 workspaces, 300 sweeps under ~30% random faults of every kind on EC2, SSM
// and S3, random crashes and concurrent API traffic over loopback — then the invariants the
// product exists for. Bounded: a fixed number of sweeps, each with a budget; exits non-zero on
// any violation.

const N = Number(process.env.SOAK_WORKSPACES ?? 1000);
const SWEEPS = Number(process.env.SOAK_SWEEPS ?? 300);

// Independent faults per service; first match wins, so ≈ 1 - Π(1 - p) of calls fail: ~30%.
const FAULTS = [
  { error: "RequestLimitExceeded", httpStatus: 503, probability: 0.1 },
  { error: "InternalError", httpStatus: 500, probability: 0.08 },
  { error: "", malformed: true, probability: 0.06 },
  { error: "UnauthorizedOperation", httpStatus: 403, probability: 0.05 },
  { error: "", latencyMs: 30, probability: 0.05 },
];

async function main() {
  const world = await createWorld({ LAUNCH_GRACE_SECONDS: "1", PROVISION_TIMEOUT_SECONDS: "3600" });
  const app = createApp(world.deps);
  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise((r) => setTimeout(r, 50));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
  const violations: string[] = [];
  const started = performance.now();

  try {
    const fleet = await seedFleet(world, N);
    for (const service of ["ec2", "ssm", "s3"]) {
      for (const f of FAULTS) {
        await world.control("/faults", { method: "POST", body: { service, action: "*", ...f } });
      }
    }
    const crashed = new Set<string>();
    const created: string[] = [];
    let apiRequests = 0;
    let apiErrors = 0;

    for (let run = 0; run < SWEEPS; run++) {
      // Random crashes: ~1 in 100 sweeps per 100 workspaces.
      if (Math.random() < 0.3) {
        const victim = fleet[Math.floor(Math.random() * fleet.length)];
        if (victim && !crashed.has(victim.id)) {
          await world.control(`/instances/${victim.instanceId}/crash`, { method: "POST" });
          crashed.add(victim.id);
        }
      }
      // Concurrent API traffic while the sweep runs.
      const traffic = (async () => {
        const calls: Promise<Response>[] = [];
        const pick = fleet[Math.floor(Math.random() * fleet.length)];
        if (pick) calls.push(fetch(`${base}/workspaces/${pick.id}/status`, { headers: admin }));
        if (run % 10 === 0) {
          calls.push(
            fetch(`${base}/workspaces`, {
              method: "POST",
              headers: admin,
              body: JSON.stringify({ name: `soak-${run}` }),
            }),
          );
        }
        if (run % 15 === 5 && created.length > 0) {
          const victim = created.shift();
          calls.push(fetch(`${base}/workspaces/${victim}`, { method: "DELETE", headers: admin }));
        }
        for (const res of await Promise.all(calls)) {
          apiRequests++;
          if (res.status >= 500) apiErrors++;
          const body = (await res.json()) as { workspace?: { id: string } };
          if (res.status === 201 && body.workspace) created.push(body.workspace.id);
        }
      })();
      await runSweep(world.deps, { budget: { remainingMs: () => 60_000 } });
      await traffic;

      // Invariant at every step: only crashed instances' workspaces are offline.
      const offline = await world.deps.db
        .select({ id: workspaces.id })
        .from(workspaces)
        .where(eq(workspaces.status, "offline"));
      for (const { id } of offline) {
        if (!crashed.has(id)) violations.push(`run ${run}: ${id} offline but its instance runs`);
      }
    }

    // Faults stop: the next sweeps must find every crash and leave nothing running unowned.
    await world.control("/faults", { method: "DELETE" });
    await new Promise((r) => setTimeout(r, 1_100));
    for (let i = 0; i < 3; i++)
      await runSweep(world.deps, { budget: { remainingMs: () => 60_000 } });

    const crashedRows = await world.deps.db
      .select({ id: workspaces.id, status: workspaces.status })
      .from(workspaces)
      .where(inArray(workspaces.id, [...crashed, "00000000-0000-0000-0000-000000000000"]));
    for (const r of crashedRows) {
      if (r.status !== "offline") violations.push(`crashed ${r.id} is ${r.status}, not offline`);
    }

    const { instances } = (await world.control("/instances")) as {
      instances: { id: string; state: string; tags: Record<string, string> }[];
    };
    const owners = new Map(
      (await world.deps.db.select().from(workspaces)).map((w) => [w.instanceId ?? "", w] as const),
    );
    for (const inst of instances) {
      if (inst.state === "terminated" || inst.state === "shutting-down") continue;
      const owner = owners.get(inst.id);
      if (!owner || owner.status === "removed")
        violations.push(`orphan ${inst.id} still ${inst.state}`);
    }

    // The event log agrees with every status.
    const mismatched = await world.deps.db.execute(sql`
      select w.id, w.status, (select e."to" from ${workspaceEvents} e where e.workspace_id = w.id
                              order by e.seq desc limit 1) as last_to
      from ${workspaces} w`);
    for (const row of (
      mismatched as unknown as { rows: { id: string; status: string; last_to: string | null }[] }
    ).rows) {
      // Seeded rows have no creation event; any event they have must end in their status.
      if (row.last_to !== null && row.last_to !== row.status) {
        violations.push(`event log of ${row.id} ends in ${row.last_to}, status is ${row.status}`);
      }
    }

    // Every route in the traffic answers faults with 2xx (201 with instanceId null, 202 removing,
    // a transient check): a 5xx is a bug.
    if (apiErrors > 0) violations.push(`${apiErrors} API answers were 5xx`);
    const seconds = Math.round((performance.now() - started) / 1000);
    const result = JSON.stringify({
      workspaces: N,
      sweeps: SWEEPS,
      crashed: crashed.size,
      apiRequests,
      api5xx: apiErrors,
      createdByApi: created.length,
      seconds,
      violations: violations.length,
    });
    console.log(result);
    if (N >= 1000 && SWEEPS >= 300) {
      writeSoakSection(
        [
          `\`npm run soak\`, ${new Date().toISOString().slice(0, 10)}: ${N.toLocaleString("en")} instance-backed workspaces, ${SWEEPS} full sweeps`,
          "under ~30% random faults (throttling, 500s, malformed replies, access denied, latency) on",
          "every EC2, SSM and S3 call, random crashes, and API traffic (status, create, delete) over",
          "loopback during the sweeps. Checked after every sweep: no workspace offline whose instance",
          "runs; at the end, with faults off: every crashed workspace offline, no running instance",
          "without a live owner, every event log ending in its workspace's status.",
          "",
          "```json",
          result,
          "```",
          "",
          violations.length === 0 ? "Zero violations." : `${violations.length} violations.`,
        ].join("\n"),
      );
    }
    if (violations.length > 0) {
      console.error(violations.slice(0, 20).join("\n"));
      process.exitCode = 1;
    }
  } finally {
    server.close();
    await world.close();
  }
}

await main();
