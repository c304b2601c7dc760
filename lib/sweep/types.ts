import { forEachBounded } from "../bounded.js";
import type { AwsProblem } from "../compute/errors.js";
import type { Deps } from "../deps.js";
import type { Actor } from "../workspaces/model.js";

/**
 * What one pass did. `transient`: rows left untouched because AWS could not say.
 * `misconfigured`: of those, rows AWS could not say about because it refused this deployment's
 * identity (a missing IAM permission, bad credentials) — an operator must act.
 */
export interface PassCounts {
  checked: number;
  changed: number;
  transient: number;
  errors: number;
  misconfigured: number;
}

export const zeroCounts = (): PassCounts => ({
  checked: 0,
  changed: 0,
  transient: 0,
  errors: 0,
  misconfigured: 0,
});

/** The run's budget: passes stop taking new batches when too little time is left. */
export interface SweepBudget {
  /** Milliseconds until the run must be finished (the Lambda's remaining time less a margin). */
  remainingMs(): number;
}

/** AWS actions that refused this deployment's identity during a run, with the first error each. */
export type Refusals = Map<string, AwsProblem>;

export interface PassContext {
  deps: Deps;
  budget: SweepBudget;
  /** Rows (or instances) per batch: one query and at most one DescribeInstances call each. */
  batchSize: number;
  /** Where passes note refused AWS actions; the run logs them once, as one ERROR line. */
  refused: Refusals;
  /** What set the pass going: its schedule (default), or an EC2 state-change event. */
  trigger?: "schedule" | "ec2-event";
}

/** The actor a pass's transitions are logged under: `sweep:<pass>`, or `ec2-event:<pass>`. */
export function passActor(ctx: Pick<PassContext, "trigger">, pass: string): Actor {
  return ctx.trigger === "ec2-event" ? `ec2-event:${pass}` : `sweep:${pass}`;
}

/** Notes that `action` was refused; returns whether the problem was a refusal at all. */
export function noteRefusal(ctx: PassContext, action: string, error: AwsProblem): boolean {
  if (!error.misconfigured) return false;
  if (!ctx.refused.has(action)) ctx.refused.set(action, error);
  return true;
}

/** Time a batch needs at most; below this a pass takes no new batch and the next run continues. */
export const BATCH_RESERVE_MS = 5_000;

export const hasTimeForBatch = (budget: SweepBudget) => budget.remainingMs() > BATCH_RESERVE_MS;

/**
 * Runs `work` over `items` with at most `limit` in flight, starting no item once the budget is
 * down to its reserve: a batch of slow items (each AWS call bounded by the run's deadline) stops
 * between items, not after the function was killed. Returns how many items were not started.
 */
export async function forEachInBudget<T>(
  ctx: PassContext,
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<number> {
  let skipped = 0;
  await forEachBounded(items, limit, async (item) => {
    if (!hasTimeForBatch(ctx.budget)) {
      skipped++;
      return;
    }
    await work(item);
  });
  return skipped;
}
