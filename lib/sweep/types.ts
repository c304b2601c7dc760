import type { Deps } from "../deps.js";

/** What one pass did. `transient`: rows left untouched because AWS could not say. */
export interface PassCounts {
  checked: number;
  changed: number;
  transient: number;
  errors: number;
}

export const zeroCounts = (): PassCounts => ({ checked: 0, changed: 0, transient: 0, errors: 0 });

/** The run's budget: passes stop taking new batches when too little time is left. */
export interface SweepBudget {
  /** Milliseconds until the run must be finished (the Lambda's remaining time less a margin). */
  remainingMs(): number;
}

export interface PassContext {
  deps: Deps;
  budget: SweepBudget;
  /** Rows (or instances) per batch: one query and at most one DescribeInstances call each. */
  batchSize: number;
}

/** Time a batch needs at most; below this a pass takes no new batch and the next run continues. */
export const BATCH_RESERVE_MS = 5_000;

export const hasTimeForBatch = (budget: SweepBudget) => budget.remainingMs() > BATCH_RESERVE_MS;
