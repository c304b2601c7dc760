import { spawnSync } from "node:child_process";
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

/** A real shell's words for `script`; throws what went wrong. */
function run(shell: Shell, script: Program, env: NodeJS.ProcessEnv = {}): Buffer[] {
  const words = runShell(shell, script, env);
  if (words instanceof Error) throw words;
  return words;
}

/** The words a shell sees when each value goes through sh as one `printf '%s\0'` argument. */
function wordsSeenBy(shell: Shell, values: readonly string[]): Buffer[] {
  return run(shell, program(...values.map((value) => sh`printf '%s\\0' ${value}`)));
}

function utf8(values: readonly string[]): Buffer[] {
  return values.map((value) => Buffer.from(value, "utf8"));
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

const batchSize = 500;
const batches = 20;

describe("property: any value runs literally through the real /bin/sh", () => {
  for (const shell of shells) {
    it(`${batchSize * batches} values, ${shell.label}`, () => {
      let checked = 0;
      fc.assert(
        fc.property(
          fc.array(anyScriptValue, { minLength: batchSize, maxLength: batchSize }),
          (values) => {
            // One shell per batch: each value as its own printf argument, then all of them as one
            // array, so both interpolation paths are checked against the same bytes.
            if (!sameWords(runShell(shell, printEach(values)), [...values, ...values])) {
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
  const refused = refusedScriptValue();

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
