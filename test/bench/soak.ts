import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { and, eq, inArray, isNotNull, sql } from "drizzle-orm";
import { workspaceEvents, workspaces } from "../../lib/db/schema.js";
import { createApp } from "../../lib/http/app.js";
import { runSweep } from "../../lib/sweep/run.js";
import { instanceToken } from "../../lib/workspaces/tokens.js";
import { ADMIN_TOKEN } from "../support/context.js";
import { soakModel } from "./model-soak.js";
import { writeSoakSection } from "./report.js";
import { createWorld, seedFleet, type World } from "./support.js";

// `npm run soak`: 1,000 workspaces, 300 sweeps under ~30% random faults of every kind on EC2, SSM
// and S3 — lost answers (the call took effect, the client never heard) and EC2's eventual
// consistency (new instances unlisted for a while) among them — random crashes, and concurrent API
// and agent traffic over loopback; then the invariants the product exists for. Runs on PGlite and
// on a real PostgreSQL 15 server (SOAK_DB=pglite|postgres for one). Bounded: a fixed number of
// sweeps, each with a budget; exits non-zero on any violation. Then the model-based test's long
// run (test/bench/model-soak.ts; `npm run soak:model` alone).

const N = Number(process.env.SOAK_WORKSPACES ?? 1000);
const SWEEPS = Number(process.env.SOAK_SWEEPS ?? 300);
const DBS = (process.env.SOAK_DB ?? "pglite,postgres").split(",") as ("pglite" | "postgres")[];
// New instances stay out of DescribeInstances this long (docs.aws.amazon.com/ec2/latest/devguide/
// eventual-consistency.html); shorter than the launch grace, as AWS's lag is shorter than ours.
const DESCRIBE_LAG_MS = 500;
// Each attempt's own timeout: a lost answer that hangs costs this much.
const REQUEST_TIMEOUT_MS = 1_500;

// Independent faults per service; first match wins, so ≈ 1 - Π(1 - p) of calls fail: ~30%.
const FAULTS = [
  { error: "RequestLimitExceeded", httpStatus: 503, probability: 0.1 },
  { error: "InternalError", httpStatus: 500, probability: 0.07 },
  { error: "", malformed: true, probability: 0.05 },
  { error: "UnauthorizedOperation", httpStatus: 403, probability: 0.04 },
  { loseAnswer: "drop", probability: 0.03 },
  { loseAnswer: "hang", probability: 0.01 },
  { error: "", latencyMs: 30, probability: 0.05 },
];

interface SoakResult {
  db: string;
  workspaces: number;
  sweeps: number;
  crashed: number;
  apiRequests: number;
  api5xx: number;
  createdByApi: number;
  registrations: number;
  seconds: number;
  violations: number;
}

async function soak(
  db: "pglite" | "postgres",
): Promise<{ result: SoakResult; violations: string[] }> {
  const world = await createWorld(
    { LAUNCH_GRACE_SECONDS: "1", PROVISION_TIMEOUT_SECONDS: "3600" },
    { db, requestTimeoutMs: REQUEST_TIMEOUT_MS },
  );
  const app = createApp(world.deps);
  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise((r) => setTimeout(r, 50));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" };
  const violations: string[] = [];
  const started = performance.now();

  try {
    const fleet = await seedFleet(world, N);
    await world.control("/settings", { method: "PUT", body: { describeLagMs: DESCRIBE_LAG_MS } });
    for (const service of ["ec2", "ssm", "s3"]) {
      for (const f of FAULTS) {
        await world.control("/faults", { method: "POST", body: { service, action: "*", ...f } });
      }
    }
    const crashed = new Set<string>();
    const created: string[] = [];
    let apiRequests = 0;
    let apiErrors = 0;
    let registrations = 0;

    for (let run = 0; run < SWEEPS; run++) {
      // Random crashes: ~1 in 100 sweeps per 100 workspaces.
      if (Math.random() < 0.3) {
        const victim = fleet[Math.floor(Math.random() * fleet.length)];
        if (victim && !crashed.has(victim.id)) {
          await world.control(`/instances/${victim.instanceId}/crash`, { method: "POST" });
          crashed.add(victim.id);
        }
      }
      // Concurrent API and agent traffic while the sweep runs.
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
        // The agent of a created workspace registers with its instance's token, often before
        // the sweep has recorded the instance (its launch's answer may have been lost).
        const newest = created[created.length - 1];
        if (run % 10 === 3 && newest) {
          const row = (
            await world.deps.db.select().from(workspaces).where(eq(workspaces.id, newest))
          )[0];
          if (row) {
            const token = instanceToken(ADMIN_TOKEN, row.id, row.generation).token;
            registrations++;
            calls.push(
              fetch(`${base}/registry/register`, {
                method: "POST",
                headers: { authorization: `Bearer ${token}` },
              }),
            );
          }
        }
        if (run % 15 === 5 && created.length > 1) {
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

      // Invariants at every step: only crashed instances' workspaces are offline, and nothing
      // instance-backed is online without its instance.
      const offline = await world.deps.db
        .select({ id: workspaces.id })
        .from(workspaces)
        .where(eq(workspaces.status, "offline"));
      for (const { id } of offline) {
        if (!crashed.has(id)) violations.push(`run ${run}: ${id} offline but its instance runs`);
      }
      const bare = await world.deps.db.execute(sql`
        select id from ${workspaces}
        where status = 'online' and runtime <> 'external' and instance_id is null`);
      for (const r of (bare as unknown as { rows: { id: string }[] }).rows) {
        violations.push(`run ${run}: ${r.id} online without its instance`);
      }
    }

    // Faults stop: the next sweeps must find every crash and leave nothing running unowned.
    await world.control("/faults", { method: "DELETE" });
    await new Promise((r) => setTimeout(r, Math.max(1_100, DESCRIBE_LAG_MS + 100)));
    for (let i = 0; i < 3; i++) {
      await runSweep(world.deps, { budget: { remainingMs: () => 60_000 } });
    }
    await checkEnd(world, crashed, violations);

    // Every route in the traffic answers faults with 2xx (201 with instanceId null, 202 removing,
    // a transient check): a 5xx is a bug.
    if (apiErrors > 0) violations.push(`${apiErrors} API answers were 5xx`);
    return {
      result: {
        db,
        workspaces: N,
        sweeps: SWEEPS,
        crashed: crashed.size,
        apiRequests,
        api5xx: apiErrors,
        createdByApi: created.length,
        registrations,
        seconds: Math.round((performance.now() - started) / 1000),
        violations: violations.length,
      },
      violations,
    };
  } finally {
    server.close();
    await world.close();
  }
}

/** The end state, with faults off and the sweeps run: what must hold once AWS answers again. */
async function checkEnd(world: World, crashed: Set<string>, violations: string[]): Promise<void> {
  const rows = await world.deps.db.select().from(workspaces);
  const byId = new Map(rows.map((w) => [w.id, w]));
  for (const id of crashed) {
    const r = byId.get(id);
    if (r && r.status !== "offline") violations.push(`crashed ${r.id} is ${r.status}, not offline`);
  }

  const { instances } = (await world.control("/instances")) as {
    instances: {
      id: string;
      state: string;
      clientToken: string | null;
      tags: Record<string, string>;
    }[];
  };
  const running = instances.filter((i) => i.state === "pending" || i.state === "running");
  for (const inst of running) {
    // Ownership follows the ClientToken: the recorded instance, or one of the current token.
    const owner = byId.get(inst.tags["wcp:workspace-id"] ?? "");
    const owned =
      owner !== undefined &&
      owner.status !== "removed" &&
      (owner.instanceId === inst.id || inst.clientToken === `${owner.id}:${owner.generation}`);
    // Seeded instances carry no workspace tag; their rows name them.
    const seeded = rows.some((w) => w.instanceId === inst.id && w.status !== "removed");
    if (!owned && !seeded) violations.push(`orphan ${inst.id} still ${inst.state}`);
    if (owner?.status === "failed" && inst.clientToken === `${owner.id}:${owner.generation}`) {
      violations.push(`${owner.id} failed while ${inst.id} of its current ClientToken runs`);
    }
  }

  // The event log agrees with every status, in commit order.
  const ends = await world.deps.db.execute(sql`
    select w.id, w.status, (select e."to" from ${workspaceEvents} e where e.workspace_id = w.id
                            and e."to" is not null order by e.seq desc limit 1) as last_to
    from ${workspaces} w`);
  for (const row of (
    ends as unknown as { rows: { id: string; status: string; last_to: string | null }[] }
  ).rows) {
    // Seeded rows have no creation event; any event they have must end in their status.
    if (row.last_to !== null && row.last_to !== row.status) {
      violations.push(`event log of ${row.id} ends in ${row.last_to}, status is ${row.status}`);
    }
  }
  // The chain is of status changes; plugin and command outcomes (`to` null) are not links.
  const events = await world.deps.db
    .select()
    .from(workspaceEvents)
    .where(
      and(
        inArray(
          workspaceEvents.workspaceId,
          rows.map((r) => r.id),
        ),
        isNotNull(workspaceEvents.to),
      ),
    )
    .orderBy(workspaceEvents.workspaceId, workspaceEvents.seq);
  for (let i = 1; i < events.length; i++) {
    const [prev, next] = [events[i - 1], events[i]];
    if (prev && next && prev.workspaceId === next.workspaceId && next.from !== prev.to) {
      violations.push(
        `event chain of ${next.workspaceId} breaks: ${prev.to} then ${next.from}→${next.to}`,
      );
    }
  }
}

async function main() {
  const results: SoakResult[] = [];
  let failed = false;
  for (const db of DBS) {
    const { result, violations } = await soak(db);
    console.log(JSON.stringify(result));
    if (violations.length > 0) {
      console.error(violations.slice(0, 20).join("\n"));
      failed = true;
    }
    results.push(result);
  }
  if (N >= 1000 && SWEEPS >= 300 && DBS.length === 2) {
    writeSoakSection(
      [
        `\`npm run soak\`, ${new Date().toISOString().slice(0, 10)}: ${N.toLocaleString("en")} instance-backed workspaces, ${SWEEPS} full sweeps,`,
        "once on PGlite and once on PostgreSQL 15 (node-postgres), under ~30% random faults on every",
        "EC2, SSM and S3 call: throttling, 500s, malformed replies, access denied, latency, and lost",
        `answers (the call takes effect, then the connection drops or never answers); new instances are`,
        `unlisted by DescribeInstances for ${DESCRIBE_LAG_MS} ms. Random crashes, and API and agent traffic (status,`,
        "create, delete, an agent registering with its instance's token) over loopback during the",
        "sweeps. Checked after every sweep: no workspace offline whose instance runs, none online",
        "without its instance. At the end, with faults off: every crashed workspace offline, no",
        "running instance without a live owner (by id or current ClientToken), no workspace failed",
        "while an instance of its current ClientToken runs, every event log in commit order and",
        "ending in its workspace's status.",
        "",
        "```json",
        ...results.map((r) => JSON.stringify(r)),
        "```",
        "",
        results.every((r) => r.violations === 0)
          ? "Zero violations."
          : `${results.reduce((n, r) => n + r.violations, 0)} violations.`,
      ].join("\n"),
    );
  }
  // Then the model-based test's long run (SOAK_MODEL=0 leaves it out).
  if (process.env.SOAK_MODEL !== "0" && !(await soakModel())) failed = true;
  if (failed) process.exitCode = 1;
}

await main();
