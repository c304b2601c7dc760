import { forEachBounded } from "../bounded.js";
import type { AwsProblem } from "../compute/errors.js";
import type { Deps } from "../deps.js";
import { safeError } from "../redact.js";
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

/** How driving one row came out, as a pass counts it. */
export type RowOutcome = "changed" | "transient" | "unchanged";

export interface BatchDrive<T, C> {
  /** Where the first batch starts. */
  start: C;
  /** Up to `limit` rows after `cursor`, in the pass's keyset order. */
  fetch: (cursor: C, limit: number) => Promise<T[]>;
  /** The cursor after `row`, the last of a batch. */
  next: (row: T) => C;
  /** What a row is, for the log line when driving it throws. */
  what: string;
  /** The ids a log line names a row by — never more of the row. */
  ids: (row: T) => Record<string, unknown>;
  drive: (row: T) => Promise<RowOutcome>;
}

/**
 * A pass that drives rows on: keyset batches of `ctx.batchSize` while the budget lasts, each row
 * driven by {@link forEachInBudget} (4 at a time, none started past the reserve), the outcomes
 * counted. A row that throws is counted and logged, and the others go on.
 */
export async function driveInBatches<T, C>(
  ctx: PassContext,
  pass: BatchDrive<T, C>,
): Promise<PassCounts> {
  const counts = zeroCounts();
  let cursor = pass.start;
  while (hasTimeForBatch(ctx.budget)) {
    const rows = await pass.fetch(cursor, ctx.batchSize);
    if (rows.length === 0) break;
    counts.checked += rows.length;
    await forEachInBudget(ctx, rows, 4, async (row) => {
      try {
        const outcome = await pass.drive(row);
        if (outcome === "changed") counts.changed++;
        else if (outcome === "transient") counts.transient++;
      } catch (err) {
        counts.errors++;
        ctx.deps.log.error(`${pass.what} failed to advance`, {
          ...pass.ids(row),
          error: safeError(err),
        });
      }
    });
    const last = rows.at(-1);
    if (rows.length < ctx.batchSize || last === undefined) break;
    cursor = pass.next(last);
  }
  return counts;
}
