import fc from "fast-check";
import { checkStep } from "./invariants.js";
import { type Model, ModelViolation, type System } from "./model.js";
import {
  describeOp,
  EC2_STATES,
  FAULT_ACTIONS,
  type FaultMode,
  type Op,
  PLUGINS,
  runOp,
  type Service,
  targetOf,
} from "./ops.js";
import { passTime } from "./time.js";

/**
 * The model test's commands for `fc.asyncModelRun`: a *burst* runs one to four operations side
 * by side — requests through different containers, the sweep, crashes and faults — each
 * started after its own few milliseconds, so the interleavings vary with the seed; *time
 * passes* moves the clocks on at a quiet moment and sweeps. The invariants are checked after
 * every command, when nothing is in flight.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A workspace the model knows (see `targetOf`): mostly a live one that can take the op. */
const ws = fc.nat({ max: 19 });
// Mostly one plugin, so that uninstalls and upgrades meet an installed one.
const plugin = fc.oneof(
  { weight: 3, arbitrary: fc.constant(PLUGINS[0]) },
  { weight: 2, arbitrary: fc.constantFrom(...PLUGINS) },
);
const service = fc.constantFrom<Service>("ec2", "ssm", "s3");

// null: until the next faults-off.
const times = fc.option(fc.integer({ min: 1, max: 3 }), { nil: null });

const anyFault: fc.Arbitrary<Op> = service.chain((s) =>
  fc.record({
    kind: fc.constant("fault" as const),
    service: fc.constant(s),
    action: fc.constantFrom(...FAULT_ACTIONS[s]),
    mode: fc.constantFrom<FaultMode>("throttle", "server", "drop", "slow", "timeout"),
    times,
  }),
);

/** An answer lost after the call took effect, on the calls whose loss the product must survive. */
const lostAnswer: fc.Arbitrary<Op> = fc
  .constantFrom<[Service, string]>(
    ["ec2", "RunInstances"],
    ["ec2", "TerminateInstances"],
    ["ssm", "SendCommand"],
    ["ssm", "SendCommand"],
    ["s3", "PutObject"],
  )
  .chain(([s, action]) =>
    fc.record({
      kind: fc.constant("fault" as const),
      service: fc.constant(s),
      action: fc.constant(action),
      mode: fc.constantFrom<FaultMode>("drop", "timeout"),
      // At least two: the SDK's second attempt must lose its answer too (SendCommand has none).
      times: fc.option(fc.integer({ min: 2, max: 4 }), { nil: null, freq: 2 }),
    }),
  );

const faultOp: fc.Arbitrary<Op> = fc.oneof(anyFault, lostAnswer);

/** One operation, weighted towards what moves workspaces and plugins. */
export const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("create" as const),
      external: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("restart" as const), ws }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("delete" as const), ws }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("mint" as const), ws }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constantFrom("register" as const, "heartbeat" as const),
      ws,
      stale: fc.boolean(),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constantFrom("install" as const, "install" as const, "uninstall" as const),
      ws,
      plugin,
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("upgrade" as const), ws, plugin }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("crash" as const), ws, pick: fc.nat({ max: 3 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("ec2event" as const),
      ws,
      pick: fc.nat({ max: 3 }),
      state: fc.constantFrom(...EC2_STATES),
      twice: fc.boolean(),
    }),
  },
  { weight: 6, arbitrary: fc.constant({ kind: "sweep" as const }) },
  { weight: 6, arbitrary: faultOp },
  { weight: 1, arbitrary: fc.constant({ kind: "faults-off" as const }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("lag" as const), ms: fc.constantFrom(0, 150, 400) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("publish" as const), plugin }) },
);

export class BurstCommand implements fc.AsyncCommand<Model, System> {
  constructor(
    readonly ops: readonly Op[],
    /** Milliseconds before each op starts. */
    readonly stagger: readonly number[],
    /** Which container takes the first op; the others follow round-robin. */
    readonly offset: number,
  ) {}

  check(): boolean {
    return true;
  }

  async run(model: Model, sys: System): Promise<void> {
    const step = ++model.figures.steps;
    const targets = this.ops.map((op) => targetOf(model, op));
    const started: Promise<string>[] = [];
    for (const [i, op] of this.ops.entries()) {
      started.push(
        (async () => {
          await sleep(this.stagger[i] ?? 0);
          model.figures.ops++;
          const caller = sys.run.apis[(i + this.offset) % sys.run.apis.length];
          if (!caller) throw new Error("no API container");
          return runOp(model, sys, caller, op, targets[i]);
        })(),
      );
    }
    const settled = await Promise.allSettled(started);
    // Every op has ended before anything is judged: nothing of this step is left in flight.
    const lines = settled.map((s, i) => {
      const what = describeOp(this.ops[i] as Op);
      return s.status === "fulfilled" ? s.value : `${what} ✗ ${String(s.reason)}`;
    });
    model.trace.push(`step ${step}: ${lines.join(" | ")}`);
    drainLog(model, sys);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed) {
      const reason = failed.reason as Error;
      throw new ModelViolation(
        [
          `step ${step}: ${reason.message}`,
          "trace (newest last):",
          ...model.trace.slice(-60).map((l) => `  ${l}`),
        ].join("\n"),
        { cause: reason },
      );
    }
    await checkStep(model, sys, `after step ${step}`);
  }

  toString(): string {
    return `burst(${this.ops.map(describeOp).join(", ")})`;
  }
}

export class TimePassesCommand implements fc.AsyncCommand<Model, System> {
  constructor(readonly seconds: number) {}

  check(): boolean {
    return true;
  }

  async run(model: Model, sys: System): Promise<void> {
    const step = ++model.figures.steps;
    const summary = await passTime(model, sys, this.seconds);
    const changed = Object.entries(summary.passes)
      .filter(([, p]) => p.changed > 0)
      .map(([n, p]) => `${n}+${p.changed}`);
    model.trace.push(`step ${step}: ${this.seconds} s pass → ${changed.join(" ") || "no change"}`);
    drainLog(model, sys);
    await checkStep(model, sys, `after step ${step} (${this.seconds} s passed)`);
  }

  toString(): string {
    return `time(${this.seconds} s)`;
  }
}

/** What the product logged as an error since the last step goes into the trace. */
function drainLog(model: Model, sys: System): void {
  for (const e of sys.run.loggedErrors.splice(0)) {
    model.trace.push(`  log: ${e.message} ${JSON.stringify(e.extra).slice(0, 300)}`);
  }
}

const burstArb = fc
  .record({
    ops: fc.array(opArb, { minLength: 1, maxLength: 4 }),
    stagger: fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 4, maxLength: 4 }),
    offset: fc.nat({ max: 2 }),
  })
  .map((b) => new BurstCommand(b.ops, b.stagger, b.offset));

// 35 s: past the launch pass's 30 s (and, seen doubled, a plugin send's 60 s settle time);
// 70 s: past the settle time on either clock; 250 s: past every claim's expiry (an install's
// 420 s, seen doubled).
const timeArb = fc
  .oneof(
    { weight: 1, arbitrary: fc.constantFrom(35, 70) },
    { weight: 1, arbitrary: fc.constant(250) },
  )
  .map((s) => new TimePassesCommand(s));

/** Commands of one run, mostly bursts. */
export const commandArb: fc.Arbitrary<fc.AsyncCommand<Model, System>> = fc.oneof(
  { weight: 5, arbitrary: burstArb },
  { weight: 1, arbitrary: timeArb },
);
