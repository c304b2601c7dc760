import { DrizzleQueryError } from "drizzle-orm/errors";

/**
 * What may be said of an error or a text in a log line or an error body: never an env value, a
 * token, a token hash, a presigned URL's signature or a SQL parameter.
 *
 * The one that leaked was drizzle's `DrizzleQueryError`: its message is `Failed query: <sql>\n
 * params: <every parameter>`, so an insert's env JSON and an authentication's token hash reached
 * the "unhandled error" line verbatim — through the message, the stack (which starts with the
 * message) and the `params` property the logger copies. Errors are therefore rebuilt from the
 * fields known to be safe, and free text is scrubbed of the shapes secrets travel in.
 */

/** What a log line carries of an error: enough to find the bug, nothing a request put in it. */
export interface SafeError {
  name: string;
  message: string;
  /** SQLSTATE of a database error, or the system error code (ECONNREFUSED, …). */
  code?: string;
  /** Schema names a PostgreSQL error reports (constraint, table, column): never row data. */
  constraint?: string;
  table?: string;
  column?: string;
  /** The stack's frames only: V8 prints the (unsafe) message as the stack's first line. */
  stack?: string;
  cause?: SafeError;
}

const MAX_MESSAGE = 500;
const MAX_DEPTH = 5;

/**
 * A log-safe description of `err` and its causes. A failed query keeps its SQL text (drizzle
 * sends values as parameters, so the text holds `$1`, not the values) and loses its parameters.
 * A PostgreSQL error keeps its SQLSTATE and schema names; its `detail` (which quotes the row: a
 * unique violation names the duplicate key) is dropped, and so is any quoted value in the message
 * of a data exception (class 22: `invalid input syntax for type uuid: "…"`).
 */
export function safeError(err: unknown, depth = 0): SafeError {
  if (!(err instanceof Error)) return { name: typeof err, message: redactText(String(err)) };
  const fields = err as Error & Record<string, unknown>;
  const code = typeof fields.code === "string" ? fields.code : undefined;
  let message: string;
  if (err instanceof DrizzleQueryError) message = `Failed query: ${err.query}`;
  else if (code !== undefined && /^22[0-9A-Z]{3}$/.test(code)) {
    message = err.message.replace(/"(?:[^"\\]|\\.)*"/g, '"…"');
  } else message = err.message;
  const out: SafeError = {
    // drizzle leaves the name "Error"; say which error it is.
    name: err instanceof DrizzleQueryError ? "DrizzleQueryError" : err.name,
    message: redactText(message).slice(0, MAX_MESSAGE),
  };
  if (code !== undefined) out.code = code;
  for (const key of ["constraint", "table", "column"] as const) {
    if (typeof fields[key] === "string") out[key] = fields[key];
  }
  const frames = err.stack
    ?.split("\n")
    .filter((line) => /^\s+at /.test(line))
    .join("\n");
  if (frames) out.stack = frames;
  if (err.cause !== undefined && depth < MAX_DEPTH) out.cause = safeError(err.cause, depth + 1);
  return out;
}

// Shapes a secret travels in inside free text:
// - drizzle's "\nparams: …" tail (to the end: a parameter may hold newlines);
const QUERY_PARAMS = /\nparams: [\s\S]*$/;
// - a URL's query (a presigned URL's X-Amz-Signature and X-Amz-Credential, a token parameter);
const URL_QUERY = /\b([a-z][a-z0-9+.-]*:\/\/[^\s?#"'<>]*)\?[^\s#"'<>]*/gi;
// - credentials in a URL or a source (`https://user:pass@host`, `user:token@owner/repo`);
const USERINFO = /([a-z][a-z0-9+.-]*:\/\/)?[^\s/@:"'<>]+:[^\s/@"'<>]+@/gi;
// - a bearer token.
const BEARER = /\bBearer\s+[^\s"',;]+/gi;

/** `text` without the shapes secrets travel in (see above); everything else stays readable. */
export function redactText(text: string): string {
  return text
    .replace(QUERY_PARAMS, "\nparams: [redacted]")
    .replace(URL_QUERY, "$1?[redacted]")
    .replace(USERINFO, (_m, scheme: string | undefined) => `${scheme ?? ""}[redacted]@`)
    .replace(BEARER, "Bearer [redacted]");
}

// Fields whose value is a secret whatever it looks like.
const SECRET_KEYS: ReadonlySet<string> = new Set([
  "authorization",
  "env",
  "params",
  "password",
  "secret",
  "token",
  "tokenhash",
  "token_hash",
]);

/**
 * A copy of a log line's fields with every error made a {@link SafeError}, every string passed
 * through {@link redactText}, and the value of a field named like a secret (`token`, `env`,
 * `params`, `authorization`, …) replaced. Bounded in depth, so a cyclic value cannot hang it.
 */
export function redactFields(value: unknown, depth = 0): unknown {
  if (value instanceof Error) return safeError(value);
  if (typeof value === "string") return redactText(value);
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Date) return value;
  if (depth >= MAX_DEPTH) return "[nested too deep]";
  if (Array.isArray(value)) return value.map((v) => redactFields(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k,
      SECRET_KEYS.has(k.toLowerCase()) ? "[redacted]" : redactFields(v, depth + 1),
    ]),
  );
}
