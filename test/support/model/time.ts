import { ListCommandsCommand } from "@aws-sdk/client-ssm";
import { sql } from "drizzle-orm";
import type { Db } from "../../../lib/db/client.js";
import { runSweep, type SweepSummary } from "../../../lib/sweep/run.js";
import type { Model, System } from "./model.js";

/**
 * Time passing, for the model: the sweep's graces and settle times (deps clock) and the
 * database's own (`now()` against stored times: the launch pass's 30 s, claim expiry, provision
 * timeout, heartbeat staleness) both move on by the same amount, without waiting for it.
 *
 * Time passes only at a quiet moment — no request in flight, every command the instances were
 * sent finished, every launched instance listed by EC2 — because that is what minutes passing
 * would have brought: a request cannot outlive API Gateway's 30 s, a command its
 * executionTimeout, EC2's lag is shorter than the launch grace. Moving the clocks past work that
 * in wall time is still running would test a world that cannot happen.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const BUDGET = { remainingMs: () => 60_000 };

/** Moves the database's clock `seconds` on: every time it stored moves back by as much. */
export async function shiftDatabaseClock(db: Db, seconds: number): Promise<void> {
  const by = sql`make_interval(secs => ${seconds})`;
  await db.execute(sql`
    update workspaces set updated_at = updated_at - ${by}, created_at = created_at - ${by},
      launched_at = launched_at - ${by}, last_heartbeat_at = last_heartbeat_at - ${by}`);
  await db.execute(sql`
    update workspace_plugins set updated_at = updated_at - ${by}, created_at = created_at - ${by}`);
  await db.execute(sql`update sweep_leases set expires_at = expires_at - ${by}`);
}

async function setLag(sys: System, describeLagMs: number): Promise<void> {
  const res = await fetch(`${sys.run.cloud.url}/_localcloud/settings`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ describeLagMs }),
  });
  if (res.status !== 200) throw new Error(`settings answered ${res.status}`);
}

interface ArmedFault {
  id: string;
  service: string;
  action: string;
  times?: number;
  fired: number;
  [k: string]: unknown;
}

/**
 * Waits until no command on any instance is still executing (ListCommands, ExecutionStage
 * `Executing`), at most `limitMs`. The model's own ListCommands must not meet the faults armed
 * for the product, so those on ssm:ListCommands are set aside meanwhile and put back with the
 * firings they have left.
 */
async function commandsFinished(sys: System, limitMs = 10_000): Promise<boolean> {
  const control = `${sys.run.cloud.url}/_localcloud/faults`;
  const { faults } = (await (await fetch(control)).json()) as { faults: ArmedFault[] };
  const aside = faults.filter((f) => f.service === "ssm" && f.action === "ListCommands");
  for (const f of aside) await fetch(`${control}/${f.id}`, { method: "DELETE" });
  try {
    const deadline = Date.now() + limitMs;
    while (Date.now() < deadline) {
      const out = await sys.run.observerAws.ssm.send(
        new ListCommandsCommand({
          Filters: [{ key: "ExecutionStage", value: "Executing" }],
          MaxResults: 1,
        }),
      );
      if ((out.Commands ?? []).length === 0) return true;
      await sleep(50);
    }
    return false;
  } finally {
    for (const { id: _id, fired, times, ...spec } of aside) {
      const left = times === undefined ? undefined : times - fired;
      if (left !== undefined && left <= 0) continue;
      await fetch(control, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...spec, ...(left !== undefined && { times: left }) }),
      });
    }
  }
}

/**
 * Waits until no instance is between states (booting, its SSM agent not registered yet, shutting
 * down), at most `limitMs`: minutes passing would have seen every boot and termination through.
 */
async function instancesSettled(sys: System, limitMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    const moving = (await sys.run.cloud.instances()).filter(
      (i) =>
        i.state === "pending" ||
        i.state === "shutting-down" ||
        i.state === "stopping" ||
        (i.state === "running" && i.ssmPingStatus === null),
    );
    if (moving.length === 0) return true;
    await sleep(25);
  }
  return false;
}

/**
 * Waits for the quiet moment time may pass at: every instance launched under a describe lag
 * listed, none between states, no command executing. False when that did not come in time.
 */
export async function quiet(model: Model, sys: System): Promise<boolean> {
  if (model.lagSeenMs > 0) await sleep(model.lagSeenMs + 50);
  const settled = await instancesSettled(sys);
  return (await commandsFinished(sys)) && settled;
}

/**
 * `seconds` pass: at a quiet moment, the database's clock moves on and a full sweep runs with
 * its clock as far ahead. No instance may launch under a lag meanwhile (time passing would have
 * ended it), so the lag is off for that sweep and set again after.
 *
 * The sweep's clock runs ahead while the stored times moved back, so a comparison between the
 * two (a plugin claim's age) sees twice the time: nothing runs alongside, so that only means more
 * time passed there, never less.
 */
export async function passTime(model: Model, sys: System, seconds: number): Promise<SweepSummary> {
  const calm = await quiet(model, sys);
  if (!calm) model.trace.push("  (not quiet: an instance or a command was still busy)");
  if (model.lagMs > 0) await setLag(sys, 0);
  try {
    await shiftDatabaseClock(sys.observer.db, seconds);
    model.figures.sweeps++;
    return await runSweep(sys.run.sweepDeps(seconds * 1000), { budget: BUDGET });
  } finally {
    if (model.lagMs > 0) await setLag(sys, model.lagMs);
  }
}

// A round moves time past the longest settle time but one (installs' claim: 420 s of claim
// age, seen doubled), so a claim nobody finishes expires within three rounds.
const ROUND_SECONDS = 100;
const MAX_ROUNDS = 15;

/**
 * The end of a run: faults off, no lag, then rounds of time passing and a full sweep until a
 * round changes nothing — no pass changed or left anything pending and nothing in the database
 * or the cloud moved. Throws when no fixpoint comes within {@link MAX_ROUNDS} rounds.
 *
 * @returns the rounds it took.
 */
export async function settle(
  model: Model,
  sys: System,
  snapshot: (sys: System) => Promise<string>,
): Promise<number> {
  await sys.run.cloud.clearFaults();
  await setLag(sys, 0);
  model.lagMs = 0;
  let before = await snapshot(sys);
  for (let round = 1; round <= MAX_ROUNDS; round++) {
    const summary = await passTime(model, sys, ROUND_SECONDS);
    await quiet(model, sys);
    const after = await snapshot(sys);
    const busy = Object.entries(summary.passes).filter(
      ([, p]) => p.changed > 0 || p.transient > 0 || p.errors > 0 || p.skipped !== undefined,
    );
    model.trace.push(
      `settle round ${round}: ${busy.map(([n, p]) => `${n} ${JSON.stringify(p)}`).join("; ") || "quiet"}`,
    );
    if (busy.length === 0 && after === before) return round;
    before = after;
  }
  throw new Error(`the sweep reached no fixpoint in ${MAX_ROUNDS} rounds`);
}
