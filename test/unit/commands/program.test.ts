import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  type BuiltCommand,
  buildCommandProgram,
  type CommandSpec,
  MAX_PROGRAM_BYTES,
} from "../../../lib/commands/program.js";
import { quote } from "../../../lib/compute/script.js";
import {
  anyScriptValue,
  refusedScriptValue,
  runShell,
  type Shell,
  sameWords,
  shells,
} from "../../support/shells.js";

// The commands API's programs through the real shells an SSM agent runs them with: any argv,
// env value and script reach the command literally, and nothing a caller sends is parsed as
// shell code of ours.

const root = mkdtempSync(join(tmpdir(), "wcp-command-root-"));
mkdirSync(join(root, "sub dir"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function built(spec: CommandSpec) {
  const result: BuiltCommand = buildCommandProgram(spec);
  if (result.kind !== "built") throw new Error(JSON.stringify(result.problems));
  return result.program;
}

/** The words a shell's run of the command printed (each NUL-terminated). */
const wordsOf = (shell: Shell, spec: CommandSpec) =>
  runShell(shell, built(spec), { WORKSPACE_ROOT: root });

const printWords = (values: readonly string[]): CommandSpec => ({
  what: { kind: "argv", argv: ["printf", "%s\\0", ...values] },
  env: {},
});

describe.each(shells)("commands through $label", (shell) => {
  it("any argv reaches the program literally, one word per element", () => {
    fc.assert(
      fc.property(fc.array(anyScriptValue, { minLength: 1, maxLength: 20 }), (values) => {
        expect(sameWords(wordsOf(shell, printWords(values)), values)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("any env value is exported literally", () => {
    fc.assert(
      fc.property(anyScriptValue, (value) => {
        const spec: CommandSpec = {
          what: { kind: "argv", argv: ["sh", "-c", 'printf "%s\\0" "$VALUE"'] },
          env: { VALUE: value },
        };
        expect(sameWords(wordsOf(shell, spec), [value])).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("a script runs as is, in the prologue's set -eu shell", () => {
    fc.assert(
      fc.property(anyScriptValue, (value) => {
        const script = `printf '%s\\0' ${quote(value)}\nfalse\nprintf 'never\\0'`;
        const run = runShell(shell, built({ what: { kind: "script", script }, env: {} }), {
          WORKSPACE_ROOT: root,
        });
        // set -e stops at `false`: exit 1, so runShell reports an error after the first word.
        expect(run).toBeInstanceOf(Error);
        expect((run as Error).message).toMatch(/exited 1/);
      }),
      { numRuns: 50 },
    );
    const script =
      "f() { printf '%s\\0' \"$1\"; }\nf one\ncat <<'EOF' | tr '\\n' '\\0'\ntwo\nEOF\n";
    expect(
      sameWords(wordsOf(shell, { what: { kind: "script", script }, env: {} }), ["one", "two"]),
    ).toBe(true);
  });

  it("enters cwd: absolute as given, relative under WORKSPACE_ROOT", () => {
    const pwd = (cwd?: string) =>
      wordsOf(shell, {
        what: { kind: "argv", argv: ["sh", "-c", 'printf "%s\\0" "$PWD"'] },
        env: {},
        cwd,
      });
    expect(sameWords(pwd(), [root])).toBe(true);
    expect(sameWords(pwd("/"), ["/"])).toBe(true);
    expect(sameWords(pwd("sub dir"), [join(root, "sub dir")])).toBe(true);
  });
});

describe("refusals", () => {
  it("names the field of any value no script may carry, and never echoes it", () => {
    fc.assert(
      fc.property(
        refusedScriptValue(),
        fc.constantFrom("argv", "env", "cwd", "script"),
        (bad, field) => {
          const spec: CommandSpec =
            field === "script"
              ? { what: { kind: "script", script: bad }, env: {} }
              : {
                  what: { kind: "argv", argv: ["echo", field === "argv" ? bad : "ok"] },
                  env: field === "env" ? { TOKEN: bad } : {},
                  cwd: field === "cwd" ? bad : undefined,
                };
          const result = buildCommandProgram(spec);
          const path = { argv: "argv.1", env: "env.TOKEN", cwd: "cwd", script: "script" }[field];
          expect(result).toEqual({
            kind: "invalid",
            problems: [{ path, message: expect.any(String) }],
          });
          if (bad.length > 3) expect(JSON.stringify(result)).not.toContain(bad);
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it("refuses a relative cwd that climbs out of WORKSPACE_ROOT", () => {
    for (const cwd of ["..", "../etc", "a/../../b"]) {
      expect(
        buildCommandProgram({ what: { kind: "argv", argv: ["true"] }, env: {}, cwd }),
      ).toMatchObject({
        kind: "invalid",
        problems: [{ path: "cwd" }],
      });
    }
    expect(
      buildCommandProgram({ what: { kind: "argv", argv: ["true"] }, env: {}, cwd: "/a/../b" }).kind,
    ).toBe("built");
  });

  it("refuses a program over SSM's 64 KB once quoted", () => {
    // Every ' takes four bytes quoted: 20,000 of them are 80,000.
    const result = buildCommandProgram({
      what: { kind: "script", script: "'".repeat(20_000) },
      env: {},
    });
    expect(result).toMatchObject({ kind: "invalid", problems: [{ path: "script" }] });
    const fits = buildCommandProgram({
      what: { kind: "script", script: "x".repeat(MAX_PROGRAM_BYTES - 200) },
      env: {},
    });
    expect(fits.kind).toBe("built");
  });
});
