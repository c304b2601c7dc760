import fc from "fast-check";
import { quote, ScriptValueError, sh } from "../../lib/compute/script.js";
import {
  anyScriptValue,
  culprit,
  printEach,
  refusedScriptValue,
  runShell,
  type Shell,
  sameWords,
  shells,
} from "../support/shells.js";

// `npx tsx test/bench/quoting-100k.ts`: the quoting property of test/unit/script.test.ts at
// 100,000 values per shell — manual evidence, not CI. Every value goes through the real /bin/sh
// (and bash started as `sh`, Amazon Linux's /bin/sh) as one `printf '%s\0'` word, 500 values per
// shell process, and must come back byte for byte; then 100,000 values holding NUL or `{{` must
// all be refused. Exits non-zero on the first failure, naming the value. SEED=<n> replays a run.

const VALUES = Number(process.env.QUOTING_VALUES ?? 100_000);
const BATCH = 500;
const SEED = process.env.SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.SEED);

/** Throws the failing value's story (not the 500-value batch fast-check would print). */
function check<T>(property: fc.IProperty<T>, numRuns: number): void {
  const details = fc.check(property, { numRuns, seed: SEED, endOnFailure: true });
  if (details.failed) {
    const cause = details.errorInstance instanceof Error ? details.errorInstance.message : "";
    throw new Error(`${cause} (seed ${details.seed}, path ${details.counterexamplePath})`);
  }
}

function literalProperty(shell: Shell): number {
  let checked = 0;
  check(
    fc.property(fc.array(anyScriptValue, { minLength: BATCH, maxLength: BATCH }), (values) => {
      if (!sameWords(runShell(shell, printEach(values)), [...values, ...values])) {
        throw new Error(culprit(shell, values));
      }
      checked += values.length;
    }),
    Math.ceil(VALUES / BATCH),
  );
  return checked;
}

function refusalProperty(): number {
  let checked = 0;
  const refused = refusedScriptValue(["\0", "{{", "{{ssm:", "{{ssm:x}}", "{{ssm-secure:x}}"]);
  const throwsScriptValueError = (act: () => unknown) => {
    try {
      act();
    } catch (err) {
      return err instanceof ScriptValueError;
    }
    return false;
  };
  check(
    fc.property(refused, (value) => {
      if (
        !throwsScriptValueError(() => quote(value)) ||
        !throwsScriptValueError(() => sh`echo ${value}`) ||
        !throwsScriptValueError(() => sh`echo ${["ok", value]}`)
      ) {
        throw new Error(`accepted ${JSON.stringify(value)}`);
      }
      checked++;
    }),
    VALUES,
  );
  return checked;
}

function main(): number {
  console.log(`quoting property: ${VALUES} values per shell, ${BATCH} per process, seed ${SEED}`);
  let failed = false;
  for (const shell of shells) {
    const started = performance.now();
    try {
      const checked = literalProperty(shell);
      const s = (performance.now() - started) / 1000;
      console.log(`  ${shell.label}: ${checked} values literal in ${s.toFixed(1)} s`);
    } catch (err) {
      failed = true;
      console.error(`  ${shell.label}: FAILED\n${err instanceof Error ? err.message : err}`);
    }
  }
  const started = performance.now();
  try {
    const checked = refusalProperty();
    const s = (performance.now() - started) / 1000;
    console.log(`  NUL and {{: ${checked} values refused in ${s.toFixed(1)} s`);
  } catch (err) {
    failed = true;
    console.error(`  NUL and {{: FAILED\n${err instanceof Error ? err.message : err}`);
  }
  return failed ? 1 : 0;
}

process.exitCode = main();
