import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import fc from "fast-check";
import { type Program, program, quote, ScriptValueError, sh } from "../../lib/compute/script.js";

// `npx tsx test/bench/quoting-100k.ts`: the quoting property of test/unit/script.test.ts at
// 100,000 values per shell — manual evidence, not CI. Every value goes through the real /bin/sh
// (and bash started as `sh`, Amazon Linux's /bin/sh) as one `printf '%s\0'` word, 500 values per
// shell process, and must come back byte for byte; then 100,000 values holding NUL or `{{` must
// all be refused. Exits non-zero on the first failure, naming the value. SEED=<n> replays a run.

const VALUES = Number(process.env.QUOTING_VALUES ?? 100_000);
const BATCH = 500;
const SEED = process.env.SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.SEED);

const shells = [
  { label: "/bin/sh", file: "/bin/sh", argv0: "sh" },
  ...(existsSync("/bin/bash") ? [{ label: "bash as sh", file: "/bin/bash", argv0: "sh" }] : []),
];
type Shell = (typeof shells)[number];

/** Runs a program on a real shell reading stdin; stdout split on NUL, or the failure. */
function run(shell: Shell, script: Program): Buffer[] | Error {
  const result = spawnSync(shell.file, ["-s"], {
    argv0: shell.argv0,
    input: script.text,
    env: { PATH: process.env.PATH },
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.error) return result.error;
  const stderr = result.stderr.toString("utf8");
  if (result.status !== 0 || stderr !== "") {
    return new Error(`${shell.label} exited ${result.status}: ${stderr.slice(0, 500)}`);
  }
  const words: Buffer[] = [];
  let start = 0;
  for (let end = result.stdout.indexOf(0); end !== -1; end = result.stdout.indexOf(0, start)) {
    words.push(result.stdout.subarray(start, end));
    start = end + 1;
  }
  if (start !== result.stdout.length) return new Error("stray output after the last word");
  return words;
}

const sameWords = (words: Buffer[] | Error, values: readonly string[]) =>
  !(words instanceof Error) &&
  words.length === values.length &&
  words.every((w, i) => w.equals(Buffer.from(values[i] ?? "", "utf8")));

const printEach = (values: readonly string[]) =>
  program(...values.map((v) => sh`printf '%s\\0' ${v}`), sh`printf '%s\\0' ${values}`);

/** The first value of a failed batch that fails alone. */
function culprit(shell: Shell, values: readonly string[]): string {
  for (const value of values) {
    const words = run(shell, printEach([value]));
    if (sameWords(words, [value, value])) continue;
    const got = words instanceof Error ? words.message : JSON.stringify(words.map(String));
    return `value ${JSON.stringify(value)} quoted as ${quote(value)}: ${got}`;
  }
  return "the batch failed although every value passes on its own";
}

// The generators of test/unit/script.test.ts: whole code points, shell-heavy units weighted up.
const metacharacters = [..."'\"$`\\\n\r\t;|&<>(){}*?[]~ #!=%-,.:@^"];
const tokens = ["$(", "$((", "${", "`", "'\\''", "\\'", "$HOME", "$(id)", "`id`", "--", "%s"];
const shellHeavyUnit = fc.oneof(
  { arbitrary: fc.constantFrom(...metacharacters), weight: 6 },
  { arbitrary: fc.constantFrom(...tokens), weight: 2 },
  { arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }), weight: 1 },
  { arbitrary: fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 1 }), weight: 1 },
);
const scriptable = (text: string) => !text.includes("\0") && !text.includes("{{");
const anyValue = fc
  .oneof(
    fc.string({ unit: "grapheme", size: "medium" }),
    fc.string({ unit: "binary", size: "medium" }),
    fc.string({ unit: "binary-ascii", size: "medium" }),
    fc.string({ unit: shellHeavyUnit, size: "medium" }),
    fc.string({ unit: shellHeavyUnit, size: "medium" }),
  )
  .filter(scriptable);

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
    fc.property(fc.array(anyValue, { minLength: BATCH, maxLength: BATCH }), (values) => {
      if (!sameWords(run(shell, printEach(values)), [...values, ...values])) {
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
  const refused = fc
    .tuple(
      anyValue,
      fc.constantFrom("\0", "{{", "{{ssm:", "{{ssm:x}}", "{{ssm-secure:x}}"),
      anyValue,
    )
    .map(([before, marker, after]) => `${before}${marker}${after}`);
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
