import type { OpenedDb } from "../../../lib/db/client.js";
import type { RunWorld } from "./world.js";

/**
 * What the model test knows, as opposed to what the product says: the workspaces it created,
 * every token it was ever handed, which DELETEs have answered, which instances it crashed. The
 * invariants compare the product's state against this and against the local cloud; the model
 * never predicts a status (under faults and concurrency several are right), it only remembers
 * what a correct status must be consistent with.
 */

export interface ModelWorkspace {
  /** Creation order, for the trace (`ws3`). */
  n: number;
  id: string;
  external: boolean;
  /** Every raw token handed out for it: the external's first one and every one minted. */
  tokens: string[];
  /** A DELETE of it was sent: from then on it may be called removed. */
  deleting: boolean;
  /** A DELETE of it has answered (200 or 202): from then on none of its tokens may work. */
  deleted: boolean;
}

export interface RunFigures {
  /** Commands run (bursts and time steps). */
  steps: number;
  /** Operations inside the bursts. */
  ops: number;
  /** API requests through `app.request`. */
  requests: number;
  /** Sweep runs (concurrent, time-passing and fixpoint ones). */
  sweeps: number;
  /** Invariant evaluations (one per invariant per check). */
  checks: number;
  /** Token probes: an authenticated request with a token that must not work. */
  probes: number;
}

export const zeroFigures = (): RunFigures => ({
  steps: 0,
  ops: 0,
  requests: 0,
  sweeps: 0,
  checks: 0,
  probes: 0,
});

export interface Model {
  workspaces: ModelWorkspace[];
  /** Instances the model crashed through the control API (state `stopped`, for good). */
  crashed: Set<string>;
  /** The describe lag now set on the cloud (ms). */
  lagMs: number;
  /** The largest lag set this run: time cannot pass before an instance launched under it shows. */
  lagSeenMs: number;
  /** What each step did, newest last: printed with a failure. */
  trace: string[];
  /** How often each answer (`install 202`) and each kind of status change was reached. */
  reached: Map<string, number>;
  figures: RunFigures;
}

export const emptyModel = (): Model => ({
  workspaces: [],
  crashed: new Set(),
  lagMs: 0,
  lagSeenMs: 0,
  trace: [],
  reached: new Map(),
  figures: zeroFigures(),
});

/** Counts one more of `what` in a tally. */
export function tally(counts: Map<string, number>, what: string, n = 1): void {
  counts.set(what, (counts.get(what) ?? 0) + n);
}

/** The system under test, as fast-check's `Real`. */
export interface System {
  run: RunWorld;
  observer: OpenedDb;
}

/** An invariant, or an answer the product must never give, broken: the run fails with it. */
export class ModelViolation extends Error {
  override name = "ModelViolation";
}
