import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import fc from "fast-check";
import { type Program, program, quote, sh } from "../../lib/compute/script.js";

// The real shells a Program meets, for the quoting property (test/unit/script.test.ts at 10,000
// values, test/bench/quoting-100k.ts at 100,000): /bin/sh here (dash on Debian), and bash started
// as `sh`, which is what /bin/sh is on Amazon Linux, where the SSM agent runs `sh _script.sh`.
// bash behaves differently from dash in places (e.g. its handling of \x01 and \x7f), so both run.
export const shells = [
  { label: "/bin/sh", file: "/bin/sh", argv0: "sh" },
  ...(existsSync("/bin/bash") ? [{ label: "bash as sh", file: "/bin/bash", argv0: "sh" }] : []),
];

export type Shell = (typeof shells)[number];

/**
 * Runs `script` with a real shell reading it from stdin (no shell around the spawn, no argv size
 * limit) and returns stdout split on NUL, or an Error for a non-zero exit, any stderr, or output
 * after the last NUL.
 */
export function runShell(
  shell: Shell,
  script: Program,
  env: NodeJS.ProcessEnv = {},
): Buffer[] | Error {
  const result = spawnSync(shell.file, ["-s"], {
    argv0: shell.argv0,
    input: script.text,
    env: { PATH: process.env.PATH, ...env },
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.error) return result.error;
  const stderr = result.stderr.toString("utf8");
  if (result.status !== 0 || stderr !== "") {
    return new Error(
      `${shell.label} exited ${result.status}: ${stderr.slice(0, 500)}\n--- script ---\n${script.text.slice(0, 2_000)}`,
    );
  }
  const words: Buffer[] = [];
  let start = 0;
  for (let end = result.stdout.indexOf(0); end !== -1; end = result.stdout.indexOf(0, start)) {
    words.push(result.stdout.subarray(start, end));
    start = end + 1;
  }
  // Every word is NUL-terminated, so anything after the last NUL is stray output.
  if (start !== result.stdout.length) return new Error("stray output after the last word");
  return words;
}

/** Each value as its own `printf '%s\0'` word, then all of them as one array argument. */
export const printEach = (values: readonly string[]) =>
  program(...values.map((v) => sh`printf '%s\\0' ${v}`), sh`printf '%s\\0' ${values}`);

/** Whether the shell printed exactly `values`, byte for byte as UTF-8. */
export const sameWords = (words: Buffer[] | Error, values: readonly string[]): boolean =>
  !(words instanceof Error) &&
  words.length === values.length &&
  words.every((w, i) => w.equals(Buffer.from(values[i] ?? "", "utf8")));

/**
 * Names the first value of a failed batch that fails on its own, so a failure reports the value
 * that matters instead of a 500-element counterexample.
 */
export function culprit(shell: Shell, values: readonly string[]): string {
  for (const value of values) {
    const words = runShell(shell, printEach([value]));
    if (sameWords(words, [value, value])) continue;
    const got =
      words instanceof Error ? words.message : `came back as ${JSON.stringify(words.map(String))}`;
    return `value ${JSON.stringify(value)} quoted as ${quote(value)}: ${got}`;
  }
  return "the batch failed although every value passes on its own";
}

// Lone surrogates are left out on purpose: a JS string holding half a surrogate pair has no UTF-8
// encoding (Buffer.from turns it into U+FFFD), so no quoting could make it round-trip; sh refuses
// such strings instead. Every unit below produces whole code points only.
const shellMetacharacters = [..."'\"$`\\\n\r\t;|&<>(){}*?[]~ #!=%-,.:@^"];
const shellTokens = ["$(", "$((", "${", "`", "'\\''", "\\'", "$HOME", "$(id)", "`id`", "--", "%s"];

const shellHeavyUnit = fc.oneof(
  { arbitrary: fc.constantFrom(...shellMetacharacters), weight: 6 },
  { arbitrary: fc.constantFrom(...shellTokens), weight: 2 },
  { arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }), weight: 1 },
  { arbitrary: fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 1 }), weight: 1 },
);

const scriptable = (text: string): boolean => !text.includes("\0") && !text.includes("{{");

/** Any string a script may carry: whole code points, shell-heavy units weighted up. */
export const anyScriptValue = fc
  .oneof(
    fc.string({ unit: "grapheme", size: "medium" }),
    fc.string({ unit: "binary", size: "medium" }),
    fc.string({ unit: "binary-ascii", size: "medium" }),
    fc.string({ unit: shellHeavyUnit, size: "medium" }),
    fc.string({ unit: shellHeavyUnit, size: "medium" }),
  )
  .filter(scriptable);

/** A string no script may carry: NUL or an SSM parameter reference somewhere inside. */
export const refusedScriptValue = (markers = ["\0", "{{", "{{ssm:", "{{ssm:x}}"]) =>
  fc
    .tuple(anyScriptValue, fc.constantFrom(...markers), anyScriptValue)
    .map(([before, marker, after]) => `${before}${marker}${after}`);
