import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createApp } from "../../lib/http/app.js";
import { codeToStatus, ERROR_CODES, type ErrorCode } from "../../lib/http/errors.js";
import { unitDeps } from "../support/unit-deps.js";

// No dead error codes: every code is listed, per route, in the OpenAPI document (an enum for each
// error status, so a generated client knows what a route can answer), and something in lib/
// constructs it. The fallbacks for an unknown route and an unserved method are the codes no route
// declares.

const app = createApp(unitDeps());
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

type Doc = {
  paths: Record<
    string,
    Record<
      string,
      {
        responses: Record<
          string,
          {
            headers?: Record<string, unknown>;
            content?: {
              "application/json"?: {
                schema?: {
                  properties?: { error?: { properties?: { code?: { enum?: string[] } } } };
                };
              };
            };
          }
        >;
      }
    >
  >;
};

async function declared(): Promise<
  { route: string; status: number; codes: string[]; retryAfter: boolean }[]
> {
  const doc = (await (await app.request("/openapi.json")).json()) as Doc;
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).flatMap(([method, op]) =>
      Object.entries(op.responses)
        .filter(([status]) => Number(status) >= 400)
        .map(([status, response]) => ({
          route: `${method.toUpperCase()} ${path}`,
          status: Number(status),
          codes:
            response.content?.["application/json"]?.schema?.properties?.error?.properties?.code
              ?.enum ?? [],
          retryAfter: response.headers?.["Retry-After"] !== undefined,
        })),
    ),
  );
}

/** lib/ source outside the code table, without the routes' declarations of what they answer. */
function constructingSource(): string {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) {
        if (name !== "localcloud") walk(full);
      } else if (full.endsWith(".ts") && !full.endsWith(join("http", "errors.ts"))) {
        files.push(full);
      }
    }
  };
  walk(join(ROOT, "lib"));
  return files
    .map((f) => readFileSync(f, "utf8"))
    .join("\n")
    .replace(/errorResponses\([^)]*\)/g, "")
    .replace(/const [A-Z]+_ERRORS = [\s\S]*?;\n/g, "");
}

describe("error codes", () => {
  it("every route's error responses list their codes as an enum, each under its own status", async () => {
    const responses = await declared();
    expect(responses.length).toBeGreaterThan(40);
    for (const r of responses) {
      expect(r.codes.length, `${r.route} ${r.status}`).toBeGreaterThan(0);
      for (const code of r.codes) {
        expect(ERROR_CODES, r.route).toContain(code);
        expect(codeToStatus(code as ErrorCode), `${r.route} ${code}`).toBe(r.status);
      }
      if (r.codes.includes("DATABASE_UNAVAILABLE")) expect(r.retryAfter, r.route).toBe(true);
    }
  });

  it("every code is declared by some route, but the unknown-route and unserved-method fallbacks", async () => {
    const codes = new Set((await declared()).flatMap((r) => r.codes));
    const undeclared = ERROR_CODES.filter((code) => !codes.has(code));
    expect(undeclared).toEqual(["NOT_FOUND", "METHOD_NOT_ALLOWED"]);
    const res = await app.request("/no/such/route");
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
  });

  it("every code is constructed somewhere in lib/, not only declared", () => {
    const source = constructingSource();
    const unused = ERROR_CODES.filter((code) => !source.includes(`"${code}"`));
    expect(unused).toEqual([]);
  });
});
