import { DrizzleQueryError } from "drizzle-orm/errors";

/**
 * Whether a failed database call means the database cannot be used right now (retry later) or
 * that the statement itself is wrong (a bug). Only the first is the caller's to wait out: the API
 * answers it 503 DATABASE_UNAVAILABLE with Retry-After, the second stays 500 INTERNAL.
 */

// SQLSTATEs of a server that is not there or will not take us now
// (postgresql.org/docs/current/errcodes-appendix.html): class 08 connection exception (08000,
// 08003 connection_does_not_exist, 08006 connection_failure, 08001, 08004, 08P01, …),
// 57P01 admin_shutdown (also what pg_terminate_backend and a Neon compute suspending send),
// 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up, or in recovery), and
// 53300 too_many_connections.
const UNAVAILABLE_STATES: ReadonlySet<string> = new Set(["57P01", "57P02", "57P03", "53300"]);

// What the socket says when the server cannot be reached or drops the connection. Counted only
// under a failed query: the same codes from an AWS call or a plugin fetch say nothing about the
// database.
const SYSTEM_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

// node-postgres (and the Neon driver, its fork) raise these without a code: pg-pool's
// "timeout exceeded when trying to connect" and "Connection terminated due to connection
// timeout", pg's "Connection terminated unexpectedly", "timeout expired" (connect timeout),
// "Query read timeout", and "Client has encountered a connection error and is not queryable".
const DRIVER_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|timeout expired$|Query read timeout$|Client has encountered a connection error)/;

/**
 * True when `err` (or any error in its `cause` chain: drizzle wraps the driver's error in a
 * `DrizzleQueryError`) says the database is unreachable, timed out, dropped the connection, is
 * shutting down or starting, or has no connection slot left. A statement the server refused on
 * its merits (syntax, a missing table, a constraint) is not: that is a bug or bad input.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  return unavailable(err, false);
}

function unavailable(err: unknown, underQuery: boolean): boolean {
  let query = underQuery;
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++, e = e.cause) {
    if (e instanceof DrizzleQueryError) query = true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      if (/^08[0-9A-Z]{3}$/.test(code) || UNAVAILABLE_STATES.has(code)) return true;
      if (query && SYSTEM_CODES.has(code)) return true;
    }
    if (DRIVER_MESSAGES.test(e.message)) return true;
    // A connection that failed several ways at once (Node tries each address of a host).
    if (e instanceof AggregateError && e.errors.some((inner) => unavailable(inner, query))) {
      return true;
    }
  }
  return false;
}
