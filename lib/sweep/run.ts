import { randomUUID } from "node:crypto";
import { deadlineIn } from "../deadline.js";
import type { Deps } from "../deps.js";
import { sweepCommands } from "./commands.js";
import { sweepIdle } from "./idle.js";
import { sweepLaunch } from "./launch.js";
import { acquireLease, releaseLease, renewLease } from "./lease.js";
import { sweepLiveness } from "./liveness.js";
import { sweepOrphans } from "./orphans.js";
import { sweepPlugins } from "./plugins.js";
import { sweepPower } from "./power.js";
import { sweepProvisionTimeout } from "./provision-timeout.js";
import { sweepReadiness } from "./readiness.js";
import { sweepRemoval } from "./removal.js";
import { sweepExternalStaleness } from "./staleness.js";
import {
  hasTimeForBatch,
  type PassContext,
  type PassCounts,
  type Refusals,
  type SweepBudget,
  zeroCounts,
} from "./types.js";
import { sweepWebhooks } from "./webhooks.js";

export const PASSES = {
  launch: sweepLaunch,
  readiness: sweepReadiness,
  liveness: sweepLiveness,
  external: sweepExternalStaleness,
  idle: sweepIdle,
  power: sweepPower,
  "provision-timeout": sweepProvisionTimeout,
  removal: sweepRemoval,
  plugins: sweepPlugins,
  commands: sweepCommands,
  orphans: sweepOrphans,
  // Last: what the passes before it changed is announced in the same run.
  webhooks: sweepWebhooks,
} as const satisfies Record<string, (ctx: PassContext) => Promise<PassCounts>>;

export type PassName = keyof typeof PASSES;

export interface PassReport extends PassCounts {
  /** Another run held the pass's lease, or no time was left: nothing was done. */
  skipped?: "leased" | "no-time";
}

export interface SweepSummary {
  runId: string;
  passes: Record<PassName, PassReport>;
  /** More than half of the liveness checks were transient: AWS is unwell, statuses are stale. */
  degraded: boolean;
  /** Rows AWS could not be asked about because it refused this deployment's identity. */
  misconfigured: number;
  /** The AWS actions refused this run (`ec2:DescribeInstances`, …); an operator must act. */
  refusedActions: string[];
  durationMs: number;
}

/** Where a run's figures go (CloudWatch EMF in Lambda; nowhere locally). */
export interface SweepMetrics {
  record(summary: SweepSummary): void;
}

export interface SweepOptions {
  budget: SweepBudget;
  batchSize?: number;
  /** Only these passes (tests); all of them, in order, by default. */
  passes?: readonly PassName[];
  metrics?: SweepMetrics;
  runId?: string;
  /**
   * Each pass's lease lives this long and is renewed at half of it while the pass works, so a
   * run killed mid-pass blocks that pass for at most this long. Keep it within the schedule's
   * period (default 20 s, for the one-minute schedule).
   */
  leaseSeconds?: number;
}

export const DEFAULT_LEASE_SECONDS = 20;

// DescribeInstances takes at most 200 filter values, so a batch of 200 rows is one call.
export const DEFAULT_BATCH_SIZE = 200;

/**
 * One sweep run: every pass in order, each under its own lease so overlapping runs never do the
 * same pass twice, each in bounded batches within the budget. A pass that throws is counted and
 * logged; the others still run. Logs one JSON summary and records metrics.
 */
export async function runSweep(deps: Deps, opts: SweepOptions): Promise<SweepSummary> {
  const started = performance.now();
  const runId = opts.runId ?? randomUUID();
  const refused: Refusals = new Map();
  // Every AWS call of the run is bounded by what remains of its budget (abort signal and
  // per-call timeout): a hung call can never hold a pass past the function's timeout.
  const runDeps: Deps = { ...deps, deadline: deadlineIn(opts.budget.remainingMs()) };
  const leaseSeconds = Math.max(2, opts.leaseSeconds ?? DEFAULT_LEASE_SECONDS);
  const names = opts.passes ?? (Object.keys(PASSES) as PassName[]);
  const passes = Object.fromEntries(
    (Object.keys(PASSES) as PassName[]).map((n) => [n, { ...zeroCounts(), skipped: "no-time" }]),
  ) as Record<PassName, PassReport>;

  for (const name of names) {
    if (!hasTimeForBatch(opts.budget)) break;
    const lease = `sweep:${name}`;
    if (!(await acquireLease(deps.db, lease, runId, leaseSeconds))) {
      passes[name] = { ...zeroCounts(), skipped: "leased" };
      deps.log.debug("sweep pass skipped", {
        runId,
        pass: name,
        why: "another run holds its lease",
      });
      continue;
    }
    const passStarted = performance.now();
    // Renewed while the pass works; once lost (this run stalled past it and another run took
    // it), the pass's budget reads zero and it takes no more work.
    let lost = false;
    const renewal = setInterval(
      () => {
        renewLease(deps.db, lease, runId, leaseSeconds)
          .then((held) => {
            if (!held) lost = true;
          })
          .catch(() => {
            // A failed renewal is retried at the next tick; the lease still runs its course.
          });
      },
      (leaseSeconds * 1000) / 2,
    );
    renewal.unref();
    const ctx: PassContext = {
      deps: runDeps,
      budget: { remainingMs: () => (lost ? 0 : opts.budget.remainingMs()) },
      batchSize: opts.batchSize ?? DEFAULT_BATCH_SIZE,
      refused,
    };
    try {
      passes[name] = await PASSES[name](ctx);
    } catch (err) {
      passes[name] = { ...zeroCounts(), errors: 1 };
      deps.log.error("sweep pass failed", { runId, pass: name, error: errorText(err) });
    } finally {
      clearInterval(renewal);
      await releaseLease(deps.db, lease, runId).catch(() => {});
    }
    // What the pass decided, in figures: rows looked at, changed, left alone because AWS could
    // not say (and of those, because it refused us), and failures.
    deps.log.debug("sweep pass", {
      runId,
      pass: name,
      ...passes[name],
      ...(lost ? { leaseLost: true } : {}),
      ms: Math.round(performance.now() - passStarted),
    });
  }
  for (const name of names) {
    if (passes[name].skipped === "no-time") {
      deps.log.debug("sweep pass skipped", {
        runId,
        pass: name,
        why: "too little of the run's budget left",
      });
    }
  }

  const live = passes.liveness;
  const summary: SweepSummary = {
    runId,
    passes,
    degraded: live.checked > 0 && live.transient * 2 > live.checked,
    misconfigured: Object.values(passes).reduce((n, p) => n + p.misconfigured, 0),
    refusedActions: [...refused.keys()].sort(),
    durationMs: Math.round(performance.now() - started),
  };
  if (refused.size > 0) {
    // One line per run, whatever the number of rows: what to grant, and what AWS said.
    deps.log.error("AWS refused this deployment's calls; statuses cannot be confirmed", {
      runId,
      hint: "grant these IAM actions to the sweep's role, or fix its credentials",
      refused: [...refused].map(([action, e]) => ({ action, code: e.code, message: e.message })),
    });
  }
  deps.log.info("sweep", { ...summary });
  opts.metrics?.record(summary);
  return summary;
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
