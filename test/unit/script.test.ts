import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  PROLOGUE,
  type Program,
  program,
  quote,
  type Script,
  ScriptValueError,
  sh,
} from "../../lib/compute/script.js";

// The shells a Program meets: /bin/sh here (dash on Debian), and bash started as `sh`, which is
// what /bin/sh is on Amazon Linux, where the SSM agent runs `sh _script.sh`. bash behaves
// differently from dash in places (e.g. its internal handling of \x01 and \x7f bytes), so both run.
const shells = [
  { label: "/bin/sh", file: "/bin/sh", argv0: "sh" },
  ...(existsSync("/bin/bash") ? [{ label: "bash as sh", file: "/bin/bash", argv0: "sh" }] : []),
];

type Shell = (typeof shells)[number];

/**
 * Runs `script` with a real shell reading it from stdin (no shell around the spawn, no argv size
 * limit) and returns stdout split on NUL. Fails on a non-zero exit or any stderr.
 */
function run(shell: Shell, script: Program, env: NodeJS.ProcessEnv = {}): Buffer[] {
  const result = spawnSync(shell.file, ["-s"], {
    argv0: shell.argv0,
    input: script.text,
    env: { PATH: process.env.PATH, ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw result.error;
  const stderr = result.stderr.toString("utf8");
  if (result.status !== 0 || stderr !== "") {
    throw new Error(
      `${shell.label} exited ${result.status}: ${stderr}\n--- script ---\n${script.text.slice(0, 2_000)}`,
    );
  }
  return splitOnNul(result.stdout);
}

function splitOnNul(output: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  let start = 0;
  for (let end = output.indexOf(0); end !== -1; end = output.indexOf(0, start)) {
    pieces.push(output.subarray(start, end));
    start = end + 1;
  }
  // Every word is NUL-terminated, so anything after the last NUL is stray output.
  expect(output.length - start).toBe(0);
  return pieces;
}

/**
 * The words a shell sees: each value goes through sh as one `printf '%s\0'` argument, so a value
 * split into two words would print two pieces and a value that expanded would print other bytes.
 */
function wordsSeenBy(shell: Shell, values: readonly string[]): Buffer[] {
  return run(shell, program(...values.map((value) => sh`printf '%s\\0' ${value}`)));
}

function utf8(values: readonly string[]): Buffer[] {
  return values.map((value) => Buffer.from(value, "utf8"));
}

function attempt<T>(act: () => T): T | Error {
  try {
    return act();
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

function sameWords(words: Buffer[] | Error, expected: Buffer[]): boolean {
  if (words instanceof Error) return false;
  return (
    words.length === expected.length &&
    words.every((word, i) => word.equals(expected[i] ?? Buffer.alloc(0)))
  );
}

/**
 * Names the first value that fails on its own, so a failing batch of hundreds of values reports
 * the one that matters instead of a 500-element counterexample.
 */
function culprit(shell: Shell, values: readonly string[]): string {
  for (const value of values) {
    const words = attempt(() => wordsSeenBy(shell, [value]));
    if (sameWords(words, utf8([value]))) continue;
    const outcome =
      words instanceof Error
        ? words.message
        : `came back as ${JSON.stringify(words.map((word) => word.toString("utf8")))}`;
    return `value ${JSON.stringify(value)} quoted as ${quote(value)}: ${outcome}`;
  }
  return "the batch failed although every value passes on its own";
}

describe("quote", () => {
  it.each([
    ["plain", "plain", "'plain'"],
    ["empty string", "", "''"],
    ["single quote", "it's", "'it'\\''s'"],
    ["only quotes", "''", "''\\'''\\'''"],
    ["double quote", 'say "hi"', "'say \"hi\"'"],
    ["dollar", "$HOME", "'$HOME'"],
    ["backslash", "a\\b", "'a\\b'"],
  ])("%s", (_name, value, quoted) => {
    expect(quote(value)).toBe(quoted);
  });

  it("refuses what no script may carry", () => {
    expect(() => quote("{{ssm:x}}")).toThrow(ScriptValueError);
    expect(() => quote("a\0b")).toThrow(ScriptValueError);
  });
});

describe("sh: values run literally", () => {
  const cases: [string, string][] = [
    ["single quote", "it's"],
    ["quote escape sequence itself", "'\\''"],
    ["double quotes", 'say "hi"'],
    ["newlines", "line one\nline two\n"],
    ["carriage return and tab", "a\r\tb"],
    ["command substitution", "$(touch /tmp/pwned)"],
    ["backticks", "`touch /tmp/pwned`"],
    ["operators", "; rm -rf / | cat & echo < in > out && x || y"],
    ["globs and tilde", "* ? [a-z] ~ ~root"],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell text under test
    ["variable", "$HOME ${HOME} $0 $@ $$"],
    ["backslashes", "\\ \\\\ \\n \\0 \\'"],
    ["leading dash", "-n"],
    ["leading double dash", "--help"],
    ["comment", "# not a comment"],
    ["history and braces", "!! {a,b} { x; }"],
    ["printf format", "%s %d %n %%"],
    ["spaces only", "   "],
    ["empty string", ""],
    ["unicode", "žluťoučký kůň — 日本語 — عربى"],
    ["emoji", "👩‍👩‍👧 🏳️‍🌈 ⚙️"],
    ["control characters", "\x01\x07\x1b[31m\x7f"],
    ["single brace", "{ssm:x}"],
  ];

  for (const shell of shells) {
    it.each(cases)(`%s (${shell.label})`, (_name, value) => {
      expect(wordsSeenBy(shell, [value])).toEqual(utf8([value]));
    });
  }

  it("turns an array into one word per element", () => {
    const values = ["a b", "", "it's", "$(x)", "-rf"];
    for (const shell of shells) {
      expect(run(shell, program(sh`printf '%s\\0' ${values}`))).toEqual(utf8(values));
    }
  });

  it("turns an empty array into no word at all", () => {
    expect(sh`ls ${[]} -l`.text).toBe("ls  -l");
  });

  it("quotes numbers as their decimal text", () => {
    expect(sh`sleep ${5} ${-1.5} ${0}`.text).toBe("sleep '5' '-1.5' '0'");
  });

  it("inserts a nested Script as-is", () => {
    // Prepare
    const dir = sh`"$WORKSPACE_ROOT"/plugins/${"my plugin"}`;
    // Act
    const script = sh`mkdir -p ${dir} && ls ${dir}`;
    // Assess
    expect(script.text).toBe(
      `mkdir -p "$WORKSPACE_ROOT"/plugins/'my plugin' && ls "$WORKSPACE_ROOT"/plugins/'my plugin'`,
    );
  });

  it("keeps the author's shell code in literal parts", () => {
    expect(sh`test -d "$WORKSPACE_ROOT" || exit 3`.text).toBe(
      'test -d "$WORKSPACE_ROOT" || exit 3',
    );
  });
});

describe("sh: refused values", () => {
  function refusal(act: () => unknown): ScriptValueError {
    try {
      act();
    } catch (error) {
      expect(error).toBeInstanceOf(ScriptValueError);
      return error as ScriptValueError;
    }
    throw new Error("expected a ScriptValueError");
  }

  it("refuses an SSM parameter reference in a value", () => {
    const error = refusal(() => sh`echo ok; echo ${"{{ssm:/db/password}}"}`);
    expect(error.name).toBe("ScriptValueError");
    expect(error.reason).toBe("contains-ssm-reference");
    expect(error.where).toEqual({ kind: "value", index: 0 });
    expect(error.value).toBe("{{ssm:/db/password}}");
  });

  it("refuses `{{` in any form, also inside an array", () => {
    expect(refusal(() => sh`echo ${["ok", "{{ param }}"]}`).reason).toBe("contains-ssm-reference");
    expect(refusal(() => sh`echo ${"{{ssm-secure:x}}"}`).reason).toBe("contains-ssm-reference");
  });

  it("refuses `{{` in a literal part, which is a bug in the caller", () => {
    const error = refusal(() => sh`echo ${"a"} {{ssm:x}}`);
    expect(error.reason).toBe("contains-ssm-reference");
    expect(error.where).toEqual({ kind: "literal", index: 1 });
  });

  it("refuses `{{` formed only by composing scripts", () => {
    const inner = sh`{ echo; }`;
    expect(refusal(() => sh`echo {${inner}`).where).toEqual({ kind: "script" });
  });

  it("refuses NUL in a value and in a literal part", () => {
    expect(refusal(() => sh`echo ${"a\0b"}`).reason).toBe("contains-nul");
    // `\0` in a template is a real NUL after escape processing; printf needs `\\0`.
    expect(refusal(() => sh`printf '%s\0' ${"a"}`).reason).toBe("contains-nul");
  });

  it("refuses a string that is not well-formed Unicode", () => {
    expect(refusal(() => sh`echo ${"\ud800"}`).reason).toBe("lone-surrogate");
  });

  it.each([NaN, Infinity, -Infinity])("refuses the number %s", (value) => {
    expect(refusal(() => sh`sleep ${value}`).reason).toBe("not-finite-number");
  });

  it.each([
    ["undefined", undefined],
    ["null", null],
    ["boolean", true],
    ["bigint", 1n],
    ["object", { toString: () => "rm -rf /" }],
    ["forged Script", { text: "rm -rf /" }],
    ["array with a number", ["a", 1]],
  ])("refuses %s", (_name, value) => {
    expect(refusal(() => sh`echo ${value as unknown as string}`).reason).toBe("unsupported-type");
  });

  it("refuses a forged Script in a program", () => {
    const forged = { text: "rm -rf /" } as unknown as Script;
    expect(refusal(() => program(forged)).reason).toBe("unsupported-type");
  });
});

describe("program", () => {
  it("starts with the prologue, then the parts on their own lines", () => {
    const text = program(sh`echo ${"a"}`, sh`echo b`).text;
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell text under test
    expect(PROLOGUE).toBe('set -eu\n: "${WORKSPACE_ROOT:=/var/lib/workspace}"');
    expect(text).toBe(`${PROLOGUE}\necho 'a'\necho b`);
  });

  it("defaults WORKSPACE_ROOT on a real instance and keeps the local cloud's", () => {
    const printRoot = program(sh`printf '%s\\0' "$WORKSPACE_ROOT"`);
    for (const shell of shells) {
      expect(run(shell, printRoot)).toEqual(utf8(["/var/lib/workspace"]));
      expect(run(shell, printRoot, { WORKSPACE_ROOT: "/tmp/i-123" })).toEqual(utf8(["/tmp/i-123"]));
    }
  });

  it("stops at the first failing command", () => {
    const result = spawnSync("/bin/sh", ["-s"], {
      input: program(sh`false`, sh`printf reached`).text,
    });
    expect(result.status).not.toBe(0);
    expect(result.stdout.toString()).toBe("");
  });
});

// Lone surrogates are left out on purpose: a JS string holding half a surrogate pair has no UTF-8
// encoding (Buffer.from turns it into U+FFFD), so no quoting could make it round-trip; sh refuses
// such strings instead (tested above). Every unit below produces whole code points only.
const shellMetacharacters = [..."'\"$`\\\n\r\t;|&<>(){}*?[]~ #!=%-,.:@^"];
const shellTokens = ["$(", "$((", "${", "`", "'\\''", "\\'", "$HOME", "$(id)", "`id`", "--", "%s"];

const shellHeavyUnit = fc.oneof(
  { arbitrary: fc.constantFrom(...shellMetacharacters), weight: 6 },
  { arbitrary: fc.constantFrom(...shellTokens), weight: 2 },
  { arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }), weight: 1 },
  { arbitrary: fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 1 }), weight: 1 },
);

const scriptable = (text: string): boolean => !text.includes("\0") && !text.includes("{{");

const anyValue = fc
  .oneof(
    fc.string({ unit: "grapheme", size: "medium" }),
    fc.string({ unit: "binary", size: "medium" }),
    fc.string({ unit: "binary-ascii", size: "medium" }),
    fc.string({ unit: shellHeavyUnit, size: "medium" }),
    fc.string({ unit: shellHeavyUnit, size: "medium" }),
  )
  .filter(scriptable);

const batchSize = 500;
const batches = 20;

describe("property: any value runs literally through the real /bin/sh", () => {
  for (const shell of shells) {
    it(`${batchSize * batches} values, ${shell.label}`, () => {
      let checked = 0;
      fc.assert(
        fc.property(
          fc.array(anyValue, { minLength: batchSize, maxLength: batchSize }),
          (values) => {
            // One shell per batch: each value as its own printf argument, then all of them as one
            // array, so both interpolation paths are checked against the same bytes.
            const script = program(
              ...values.map((value) => sh`printf '%s\\0' ${value}`),
              sh`printf '%s\\0' ${values}`,
            );
            const words = attempt(() => run(shell, script));
            if (!sameWords(words, utf8([...values, ...values]))) {
              throw new Error(culprit(shell, values));
            }
            checked += values.length;
          },
        ),
        // The failure names its value (see culprit), and shrinking would rerun culprit's
        // hundreds of shells per step.
        { numRuns: batches, endOnFailure: true },
      );
      expect(checked).toBeGreaterThanOrEqual(10_000);
    });
  }
});

describe("property: NUL and `{{` never reach a script", () => {
  const refused = fc
    .tuple(anyValue, fc.constantFrom("\0", "{{", "{{ssm:", "{{ssm:x}}"), anyValue)
    .map(([before, marker, after]) => `${before}${marker}${after}`);

  it("throws ScriptValueError for any value containing them", () => {
    fc.assert(
      fc.property(refused, (value) => {
        expect(() => quote(value)).toThrow(ScriptValueError);
        expect(() => sh`echo ${value}`).toThrow(ScriptValueError);
        expect(() => sh`echo ${["ok", value]}`).toThrow(ScriptValueError);
      }),
      { numRuns: 2_000 },
    );
  });
});
