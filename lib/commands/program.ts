import { createHash } from "node:crypto";
import { type Program, program, type Script, ScriptValueError, sh } from "../compute/script.js";

/**
 * The program a command runs as, built only through the quoting builder: every argv element,
 * env value and the cwd become single shell words, and a caller's script is handed to `eval` as
 * one quoted word, so no user value is ever parsed as shell code of ours. Refusals name the
 * field and never echo the value (an env value may be a secret).
 */

/** At most this many argv elements. */
export const MAX_ARGV_ITEMS = 256;
/** A script's own size, in UTF-8 bytes. */
export const MAX_SCRIPT_BYTES = 64 * 1024;
/**
 * The whole program, as sent: SSM refuses a document over 64 KB (MaxDocumentSizeExceeded,
 * docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html, Errors), and
 * quoting grows a value (every `'` takes four bytes), so the limit is checked on what is sent.
 */
export const MAX_PROGRAM_BYTES = 64 * 1024;

export type CommandWhat =
  | { kind: "argv"; argv: readonly string[] }
  | { kind: "script"; script: string };

export interface CommandSpec {
  what: CommandWhat;
  /** Exported before the command runs; keys are shell names (checked by the route's schema). */
  env: Readonly<Record<string, string>>;
  /** Absolute, or relative to `$WORKSPACE_ROOT` (the default). */
  cwd?: string | undefined;
}

export interface FieldProblem {
  path: string;
  message: string;
}

export type BuiltCommand =
  | { kind: "built"; program: Program }
  | { kind: "invalid"; problems: FieldProblem[] };

/**
 * Builds the program: the prologue (`set -eu`, `WORKSPACE_ROOT`), `cd` into the working
 * directory, the exports, then the argv as one simple command (its exit status is the
 * program's) or `eval` of the script, which so runs as is, in the prologue's `set -eu` shell.
 * Every refused value is reported with its field (`argv.3`, `env.TOKEN`, `cwd`, `script`).
 */
export function buildCommandProgram(spec: CommandSpec): BuiltCommand {
  const problems: FieldProblem[] = [];
  const piece = (path: string, make: () => Script): Script | undefined => {
    try {
      return make();
    } catch (err) {
      if (!(err instanceof ScriptValueError)) throw err;
      problems.push({ path, message: `it ${err.problem}` });
      return undefined;
    }
  };

  if (spec.cwd !== undefined && !spec.cwd.startsWith("/") && spec.cwd.split("/").includes("..")) {
    problems.push({ path: "cwd", message: "a relative cwd may not climb out of WORKSPACE_ROOT" });
  }
  const cwd = piece("cwd", () => changeDirectory(spec.cwd));
  const exports = envEntries(spec.env).map(([key, value]) =>
    piece(`env.${key}`, () => sh`export ${key}=${value}`),
  );
  let run: Script | undefined;
  if (spec.what.kind === "argv") {
    const { argv } = spec.what;
    // Each element on its own first, so a refusal names its index.
    const before = problems.length;
    for (const [i, arg] of argv.entries()) piece(`argv.${i}`, () => sh`${arg}`);
    run = problems.length === before ? sh`${argv}` : undefined;
  } else {
    const { script } = spec.what;
    run = piece("script", () => sh`eval ${script}`);
  }
  if (problems.length > 0 || cwd === undefined || run === undefined) {
    return { kind: "invalid", problems };
  }
  const built = program(cwd, ...exports.filter((e) => e !== undefined), run);
  if (Buffer.byteLength(built.text) > MAX_PROGRAM_BYTES) {
    return {
      kind: "invalid",
      problems: [
        {
          path: spec.what.kind,
          message: `the command, quoted for the shell with its env and cwd, exceeds ${MAX_PROGRAM_BYTES} bytes (SSM's document limit)`,
        },
      ],
    };
  }
  return { kind: "built", program: built };
}

/** `cd` into the command's directory: absolute, or under `$WORKSPACE_ROOT`. */
function changeDirectory(cwd: string | undefined): Script {
  if (cwd === undefined) return sh`cd -- "$WORKSPACE_ROOT"`;
  if (cwd.startsWith("/")) return sh`cd -- ${cwd}`;
  return sh`cd -- "$WORKSPACE_ROOT"/${cwd}`;
}

/** The env's entries in key order (code units, as the database and the hash see them). */
export const envEntries = (env: Readonly<Record<string, string>>): [string, string][] =>
  Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/** What the audit trail keeps of a script: its digest and size, never its text. */
export function scriptDigest(script: string): { sha256: string; bytes: number } {
  return {
    sha256: createHash("sha256").update(script, "utf8").digest("hex"),
    bytes: Buffer.byteLength(script, "utf8"),
  };
}
