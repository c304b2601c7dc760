import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../../../lib/http/errors.js";

// The typed client's types are generated from the served OpenAPI document and committed; a
// route, a field or an error code that changes without `npm run client:generate` fails here.

const run = promisify(execFile);

describe("lib/client/schema.d.ts", () => {
  it("is what npm run client:generate writes from today's routes", async () => {
    // Act
    const { stdout } = await run(
      "node_modules/.bin/tsx",
      ["tools/openapi-types/generate.ts", "--stdout"],
      { env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" } },
    );

    // Assess
    const committed = readFileSync("lib/client/schema.d.ts", "utf8");
    expect(stdout.length).toBeGreaterThan(1000);
    expect(committed, "run `npm run client:generate` and commit the result").toBe(stdout);
  }, 60_000);

  it("types every error code a route answers", () => {
    // Answered for paths no route owns (an unknown path, a wrong method), so in no route's list.
    const routeless: readonly string[] = ["NOT_FOUND", "METHOD_NOT_ALLOWED"];
    const committed = readFileSync("lib/client/schema.d.ts", "utf8");
    const missing = ERROR_CODES.filter(
      (code) => !routeless.includes(code) && !committed.includes(`"${code}"`),
    );
    expect(missing).toEqual([]);
  });
});
