import { describe, expect, it } from "vitest";
import { dbKindFor } from "../../lib/db/client.js";
import { redactedUrl } from "../../lib/db/start.js";

describe("which driver serves a database URL", () => {
  it.each([
    ["memory://", undefined, "pglite"],
    ["file://./.data/pglite", undefined, "pglite"],
    ["postgres://u:p@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb", undefined, "neon"],
    ["postgresql://u:p@EP-X.EU-CENTRAL-1.AWS.NEON.TECH/db?sslmode=require", undefined, "neon"],
    ["postgres://u:p@127.0.0.1:5432/db", undefined, "pg"],
    ["postgres://u:p@app.cluster-abc.us-east-1.rds.amazonaws.com:5432/app", undefined, "pg"],
    // A name that merely contains neon.tech is not Neon's.
    ["postgres://u:p@neon.tech.example.com/db", undefined, "pg"],
    ["postgres://u:p@notneon.tech/db", undefined, "pg"],
    // DATABASE_DRIVER wins over the host.
    ["postgres://u:p@127.0.0.1:5432/db", "neon", "neon"],
    ["postgres://u:p@ep-x.neon.tech/db", "pg", "pg"],
  ] as const)("%s (driver %s) → %s", (url, driver, kind) => {
    expect(dbKindFor(url, driver)).toBe(kind);
  });

  it("refuses any other scheme", () => {
    expect(() => dbKindFor("mysql://x")).toThrow(/unsupported/);
  });
});

describe("the database URL as start-up errors show it", () => {
  it("drops the password and the query, keeps the rest", () => {
    expect(
      redactedUrl("postgres://wcp:s3cr%40t@127.0.0.1:5432/app?password=x&sslmode=require"),
    ).toBe("postgres://wcp@127.0.0.1:5432/app");
    expect(redactedUrl("file://./.data/pglite")).toBe("file://./.data/pglite");
    expect(redactedUrl("postgres://[bad")).toBe("(unparsable)");
  });
});
