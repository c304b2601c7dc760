import { sql } from "drizzle-orm";
import fc from "fast-check";
import { rowsOf } from "../../../lib/workspaces/transition.js";
import { commandArb } from "./commands.js";
import { checkEnd, snapshot } from "./invariants.js";
import { emptyModel, type RunFigures, type System, tally, zeroFigures } from "./model.js";
import { settle } from "./time.js";
import { openModelWorld } from "./world.js";

/**
 * Runs the model-based test: `runs` random command sequences of up to `maxCommands` each, on a
 * PostgreSQL server, each ending with the sweep at its fixpoint and the end-state invariants.
 * Replays a failure with its `seed` and `path` (and `replayPath` for a shrunk one).
 *
 * What replays is the sequence of commands; the interleavings inside a burst and the order in
 * which PostgreSQL grants locks are real, so a replay reproduces a race only as often as the
 * timing does. A failure's trace says what each step did and answered.
 */
export interface ModelOptions {
  /** A PostgreSQL URL whose role may CREATE DATABASE. */
  adminUrl: string;
  runs: number;
  maxCommands: number;
  seed?: number;
  path?: string;
  replayPath?: string;
  /** Shrink a failure (each attempt is a full run: slow). Default: report the first failure. */
  shrink?: boolean;
  /** Sees every run's trace when it ends (`MODEL_TRACE=1`). */
  onTrace?: (trace: readonly string[]) => void;
}

export interface ModelReport extends RunFigures {
  runs: number;
  seed: number;
  /** Sweep rounds the fixpoints took, in total. */
  settleRounds: number;
  /** How often each answer and each kind of status change (its event's reason) was reached. */
  reached: Record<string, number>;
  seconds: number;
  /** The failure report (seed, path, counterexample, trace), or null. */
  failure: string | null;
}

/** Reads the run's settings from the environment (`MODEL_*`), with `defaults` for the rest. */
export function modelOptionsFromEnv(
  adminUrl: string,
  defaults: { runs: number; maxCommands: number },
  env: NodeJS.ProcessEnv = process.env,
): ModelOptions {
  const num = (v: string | undefined) => (v === undefined || v === "" ? undefined : Number(v));
  return {
    adminUrl,
    runs: num(env.MODEL_RUNS) ?? defaults.runs,
    maxCommands: num(env.MODEL_STEPS) ?? defaults.maxCommands,
    ...(num(env.MODEL_SEED) !== undefined && { seed: num(env.MODEL_SEED) }),
    ...(env.MODEL_PATH && { path: env.MODEL_PATH }),
    ...(env.MODEL_REPLAY_PATH && { replayPath: env.MODEL_REPLAY_PATH }),
    shrink: env.MODEL_SHRINK === "1",
    ...(env.MODEL_TRACE === "1" && {
      onTrace: (trace: readonly string[]) => console.error(["run:", ...trace].join("\n  ")),
    }),
  };
}

export async function runModel(opts: ModelOptions): Promise<ModelReport> {
  const started = performance.now();
  const seed = opts.seed ?? (Math.random() * 2 ** 31) | 0;
  const world = await openModelWorld(opts.adminUrl);
  const totals = zeroFigures();
  let runs = 0;
  let settleRounds = 0;
  const reached = new Map<string, number>();
  const property = fc.asyncProperty(
    fc.commands([commandArb], {
      maxCommands: opts.maxCommands,
      // Lengths spread up to the maximum, not biased to a handful: races need a few steps.
      size: "max",
      ...(opts.replayPath !== undefined && { replayPath: opts.replayPath }),
    }),
    async (commands) => {
      runs++;
      const run = await world.beginRun(`${(seed >>> 0).toString(36)}-${runs}`);
      const model = emptyModel();
      const sys = { run, observer: world.observer };
      try {
        await fc.asyncModelRun(() => ({ model, real: sys }), commands);
        try {
          settleRounds += await settle(model, sys, snapshot);
        } catch (err) {
          const trace = model.trace.slice(-60).map((l) => `  ${l}`);
          throw new Error([String(err), "trace (newest last):", ...trace].join("\n"));
        }
        await checkEnd(model, sys);
      } finally {
        for (const k of Object.keys(totals) as (keyof RunFigures)[]) totals[k] += model.figures[k];
        for (const [k, n] of model.reached) tally(reached, k, n);
        for (const [k, n] of await statusChanges(sys)) tally(reached, k, n);
        opts.onTrace?.(model.trace);
        await run.end();
      }
    },
  );
  try {
    const details = await fc.check(property, {
      numRuns: opts.runs,
      seed,
      ...(opts.path !== undefined && { path: opts.path }),
      endOnFailure: !opts.shrink,
    });
    let failure: string | null = null;
    if (details.failed) {
      const message = fc.defaultReportMessage(details) ?? "failed";
      // The commands' own replay path matters only for a shrunk counterexample.
      const replayPath =
        details.numShrinks > 0 ? /replayPath="([^"]*)"/.exec(message)?.[1] : undefined;
      const error = details.errorInstance;
      failure = [
        `model run failed — replay with MODEL_SEED=${details.seed} MODEL_PATH=${details.counterexamplePath}${replayPath ? ` MODEL_REPLAY_PATH=${replayPath}` : ""}`,
        message,
        error instanceof Error ? (error.stack ?? error.message) : String(error),
      ].join("\n");
    }
    return {
      ...totals,
      runs,
      seed,
      settleRounds,
      reached: Object.fromEntries([...reached].sort(([a], [b]) => a.localeCompare(b))),
      seconds: Math.round((performance.now() - started) / 100) / 10,
      failure,
    };
  } finally {
    await world.close();
  }
}

/** The run's status changes by kind: each event's reason with its ids taken out. */
async function statusChanges(sys: System): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const result = await sys.observer.db.execute(
    sql`select "from", "to", reason from workspace_events`,
  );
  for (const e of rowsOf(result)) {
    const reason = String(e.reason)
      .replace(/i-[0-9a-f]{17}/g, "i-…")
      .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "…")
      .replace(/generation \d+/g, "generation N");
    tally(out, `event ${String(e.from ?? "∅")}→${String(e.to)}: ${reason}`);
  }
  const plugins = await sys.observer.db.execute(sql`select state, error from workspace_plugins`);
  for (const p of rowsOf(plugins)) {
    const why = p.error === null ? "" : `: ${String(p.error).replace(/\d+/g, "N").slice(0, 60)}`;
    tally(out, `plugin ${String(p.state)}${why}`);
  }
  return out;
}
