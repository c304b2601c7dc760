/**
 * The only way a shell script is made in this product.
 *
 * Scripts go to instances over SSM Run Command, where the agent writes them to `_script.sh` and
 * runs them with `sh` as root. Any text that reaches one of them from a request (a plugin name, an
 * env value, a URL) is therefore a root shell injection unless it is quoted, so scripts are built
 * only with the {@link sh} tagged template, which quotes every interpolated value, and are sent
 * only as a {@link Program}, which adds the common prologue.
 *
 * Quoting is written by hand: it is three lines of POSIX single-quoting, and the libraries that
 * do it (shell-quote, shescape) either target other shells' rules or escape instead of quoting.
 * The property test in test/unit/script.test.ts runs it against the real `/bin/sh`.
 */

/** Why a value was refused; the HTTP layer maps a refused request value to 400. */
export type ScriptValueReason =
  | "contains-nul"
  | "contains-ssm-reference"
  | "lone-surrogate"
  | "not-finite-number"
  | "unsupported-type"
  | "invalid-template";

/** Where the refused text was: an interpolated value, a literal part of the template, or both. */
export type ScriptValueLocation =
  | { readonly kind: "value"; readonly index: number }
  | { readonly kind: "literal"; readonly index: number }
  | { readonly kind: "script" };

const reasonText: Record<ScriptValueReason, string> = {
  "contains-nul": "contains NUL, which no shell word can hold",
  "contains-ssm-reference":
    "contains '{{', which SSM would resolve as a Parameter Store reference on the instance",
  "lone-surrogate": "is not well-formed Unicode, so it has no UTF-8 bytes to preserve",
  "not-finite-number": "is not a finite number",
  "unsupported-type": "is not a string, number, string array or Script",
  "invalid-template": "has an invalid escape sequence",
};

function describeLocation(where: ScriptValueLocation): string {
  switch (where.kind) {
    case "value":
      return `interpolated value ${where.index}`;
    case "literal":
      return `template literal part ${where.index}`;
    case "script":
      return "composed script";
    default: {
      const unreachable: never = where;
      return unreachable;
    }
  }
}

/**
 * A value (or a literal part of a template) that cannot go into a script. Thrown before any
 * script exists, so a refused value is never sent. A literal part that trips it is a bug in the
 * calling code, not bad input.
 */
export class ScriptValueError extends Error {
  override readonly name = "ScriptValueError";
  readonly reason: ScriptValueReason;
  readonly where: ScriptValueLocation;
  /** The refused value itself, so a caller can name the offending field. */
  readonly value: unknown;
  /** Why, without saying where or what: "contains NUL, …" — safe to show next to a field. */
  readonly problem: string;

  constructor(reason: ScriptValueReason, where: ScriptValueLocation, value: unknown) {
    super(`Script ${describeLocation(where)} ${reasonText[reason]}`);
    this.reason = reason;
    this.where = where;
    this.value = value;
    this.problem = reasonText[reason];
  }
}

// Matches a UTF-16 code unit that is half of a surrogate pair with its other half missing: with
// the `u` flag, well-formed pairs are read as one code point and never match.
const loneSurrogate = /\p{Cs}/u;

/** Returns why `text` cannot appear anywhere in a script, or undefined when it can. */
function refusal(text: string): ScriptValueReason | undefined {
  if (text.includes("\0")) return "contains-nul";
  // SSM resolves `{{ssm:NAME}}` (and `{{ssm-secure:…}}`, `{{ param }}`) in document parameters
  // on the instance before the shell sees the script, so quoting cannot protect `{{`.
  if (text.includes("{{")) return "contains-ssm-reference";
  if (loneSurrogate.test(text)) return "lone-surrogate";
  return undefined;
}

function check(text: string, where: ScriptValueLocation): void {
  const reason = refusal(text);
  if (reason !== undefined) throw new ScriptValueError(reason, where, text);
}

/**
 * POSIX single-quotes `value`: `'` + value with every `'` replaced by `'\''` + `'`. Inside single
 * quotes no character is special, so the result is exactly one shell word whose bytes are the
 * UTF-8 bytes of `value`; the empty string becomes `''`.
 *
 * @throws ScriptValueError when `value` contains NUL, `{{` or a lone surrogate, so no quoted word
 *   this module produces can carry them.
 */
export function quote(value: string): string {
  check(value, { kind: "value", index: 0 });
  return quoteChecked(value);
}

function quoteChecked(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

declare const scriptBrand: unique symbol;
declare const programBrand: unique symbol;

/**
 * Shell text made by {@link sh}. The brand is a type that no other module can name, so only this
 * module makes one; at run time {@link sh} also checks that a nested Script really came from here.
 */
export interface Script {
  readonly text: string;
  readonly [scriptBrand]: true;
}

/** A complete script: {@link PROLOGUE} followed by its parts. What `runCommand` sends. */
export interface Program extends Script {
  readonly [programBrand]: true;
}

/** What {@link sh} accepts between `${` and `}`. */
export type ScriptArg = string | number | Script | readonly string[];

// Type brands are erased, so a Script cast from JSON or a hand-made object would pass the type
// check; this registry lets sh refuse anything it did not make itself.
const madeHere = new WeakSet<object>();

function make<T extends Script>(text: string): T {
  const script = Object.freeze({ text });
  madeHere.add(script);
  return script as unknown as T;
}

function isScript(value: unknown): value is Script {
  return typeof value === "object" && value !== null && madeHere.has(value);
}

function render(value: unknown, index: number): string {
  const where: ScriptValueLocation = { kind: "value", index };
  if (typeof value === "string") {
    check(value, where);
    return quoteChecked(value);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new ScriptValueError("not-finite-number", where, value);
    return quoteChecked(String(value));
  }
  if (isScript(value)) return value.text;
  if (Array.isArray(value)) {
    const words: string[] = [];
    for (const item of value as readonly unknown[]) {
      if (typeof item !== "string") throw new ScriptValueError("unsupported-type", where, value);
      check(item, where);
      words.push(quoteChecked(item));
    }
    return words.join(" ");
  }
  throw new ScriptValueError("unsupported-type", where, value);
}

/**
 * Tagged template that builds shell text.
 *
 * Contract: every interpolated string or number becomes exactly one shell word whose bytes are the
 * value's literal UTF-8 bytes (numbers as `String(n)`), whatever it contains — quotes, newlines,
 * `$()`, backticks, globs, `~`, `#`. An array of strings becomes one such word per element (zero
 * words when empty). A nested {@link Script} is inserted as its text: composing scripts built by
 * `sh` is the only way to put unquoted text into a script.
 *
 * The literal parts are the author's shell code, taken after JavaScript escape processing (so
 * write `\\0` for printf's `\0`). Quoting makes a word, not an operand: a value starting with
 * `-` can still be read as an option by the command, so put `--` before untrusted operands.
 *
 * @throws ScriptValueError for a value or literal part containing NUL or `{{` (SSM resolves
 *   `{{ssm:NAME}}` on the instance), a string that is not well-formed Unicode, a number that is
 *   not finite, or any other type (including objects posing as a Script).
 */
export function sh(strings: TemplateStringsArray, ...values: ScriptArg[]): Script {
  let text = "";
  for (const [index, literal] of strings.entries()) {
    // `cooked` is undefined when a tagged template holds an invalid escape such as `\u`.
    if (literal === undefined) {
      throw new ScriptValueError(
        "invalid-template",
        { kind: "literal", index },
        strings.raw[index],
      );
    }
    check(literal, { kind: "literal", index });
    text += literal;
    if (index < values.length) text += render(values[index], index);
  }
  // A literal ending in `{` next to a nested Script starting with `{` forms `{{` only when joined.
  check(text, { kind: "script" });
  return make(text);
}

/**
 * The first lines of every program. `set -eu` stops at the first failing command or unset
 * variable instead of carrying on as root with half a state. `WORKSPACE_ROOT` is the seam with the
 * local cloud: it runs commands with `WORKSPACE_ROOT` set to the instance's directory, while a real
 * instance has it unset and uses `/var/lib/workspace`. Scripts refer to `"$WORKSPACE_ROOT"`.
 */
// biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not JavaScript
export const PROLOGUE = 'set -eu\n: "${WORKSPACE_ROOT:=/var/lib/workspace}"';

/**
 * Makes a complete program: {@link PROLOGUE}, then the parts, joined by newlines. Only a Program
 * is sent to an instance, so no script runs without `set -eu` and a `WORKSPACE_ROOT`.
 */
export function program(...parts: Script[]): Program {
  const lines = [PROLOGUE];
  for (const part of parts) {
    if (!isScript(part)) {
      throw new ScriptValueError("unsupported-type", { kind: "script" }, part);
    }
    lines.push(part.text);
  }
  return make<Program>(lines.join("\n"));
}
