import { DrizzleQueryError } from "drizzle-orm/errors";
import { describe, expect, it } from "vitest";
import { isDatabaseUnavailable } from "../../lib/db/errors.js";

// Shapes as the drivers raise them: node-postgres and the Neon driver (its fork) give a server's
// refusal a five-character SQLSTATE `code`, a socket's failure the system's `code`, and some of
// their own failures only a message; drizzle wraps each in a DrizzleQueryError (`cause`).
const withCode = (code: string, message = `failure ${code}`) =>
  Object.assign(new Error(message), { code });
const failedQuery = (cause: unknown) => new DrizzleQueryError("select 1", [], cause as Error);

describe("isDatabaseUnavailable", () => {
  it.each([
    ["08006 connection_failure", withCode("08006")],
    ["08001 sqlclient_unable_to_establish_sqlconnection", withCode("08001")],
    ["08P01 protocol_violation", withCode("08P01")],
    ["57P01 admin_shutdown (pg_terminate_backend, a Neon compute suspending)", withCode("57P01")],
    ["57P02 crash_shutdown", withCode("57P02")],
    ["57P03 cannot_connect_now", withCode("57P03")],
    ["53300 too_many_connections", withCode("53300")],
  ])("%s is unavailable, bare or wrapped by drizzle", (_name, err) => {
    expect(isDatabaseUnavailable(err)).toBe(true);
    expect(isDatabaseUnavailable(failedQuery(err))).toBe(true);
  });

  it.each([
    "Connection terminated unexpectedly",
    "Connection terminated due to connection timeout",
    "timeout exceeded when trying to connect",
    "Query read timeout",
    "Client has encountered a connection error and is not queryable",
  ])("the drivers' own %j is unavailable", (message) => {
    expect(isDatabaseUnavailable(failedQuery(new Error(message)))).toBe(true);
  });

  it("a refused or timed-out socket counts under a failed query only", () => {
    for (const code of ["ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN"]) {
      expect(isDatabaseUnavailable(failedQuery(withCode(code))), code).toBe(true);
      // The same code from an AWS call or a plugin fetch says nothing about the database.
      expect(isDatabaseUnavailable(withCode(code)), code).toBe(false);
    }
    const everyAddress = new AggregateError([withCode("ECONNREFUSED"), withCode("ECONNREFUSED")]);
    expect(isDatabaseUnavailable(failedQuery(everyAddress))).toBe(true);
  });

  it.each([
    ["42P01 undefined_table", withCode("42P01")],
    ["42601 syntax_error", withCode("42601")],
    ["23505 unique_violation", withCode("23505")],
    ["22P02 invalid_text_representation", withCode("22P02")],
    ["40001 serialization_failure", withCode("40001")],
    ["no code at all", new Error("boom")],
  ])("%s is a statement's own failure, not an outage", (_name, err) => {
    expect(isDatabaseUnavailable(failedQuery(err))).toBe(false);
  });
});
