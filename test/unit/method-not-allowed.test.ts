import { describe, expect, it } from "vitest";
import { createApp } from "../../lib/http/app.js";
import { unitDeps } from "../support/unit-deps.js";

// A wrong method on a known path is 405 METHOD_NOT_ALLOWED with `Allow` (RFC 9110 §15.5.6), for
// every path of the OpenAPI document, parameterised ones included; an unknown path stays 404.

const app = createApp(unitDeps());
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const ID = "0b5e8f4c-3f4e-4b6e-9a53-0c1b1d2e3f40";

/** Each documented path with its `{…}` parameters filled in, and the methods it serves. */
async function documentedPaths(): Promise<{ path: string; allow: string[] }[]> {
  const doc = (await (await app.request("/openapi.json")).json()) as {
    paths: Record<string, Record<string, unknown>>;
  };
  const served = [
    ...Object.entries(doc.paths).map(([path, ops]) => ({
      path: path.replaceAll("{id}", ID).replaceAll(/\{[^}]+\}/g, "x"),
      methods: Object.keys(ops).map((m) => m.toUpperCase()),
    })),
    // Served beside the document, not described in it.
    { path: "/openapi.json", methods: ["GET"] },
    { path: "/docs", methods: ["GET"] },
  ];
  return served.map(({ path, methods }) => ({
    path,
    allow: [...methods, ...(methods.includes("GET") ? ["HEAD"] : [])].sort(),
  }));
}

describe("405 METHOD_NOT_ALLOWED", () => {
  it("answers every unserved method on every known path with Allow naming the served ones", async () => {
    const paths = await documentedPaths();
    expect(paths.length).toBeGreaterThan(15);
    let checked = 0;
    for (const { path, allow } of paths) {
      for (const method of METHODS.filter((m) => !allow.includes(m))) {
        // Act
        const res = await app.request(path, { method });

        // Assess
        const body = (await res.json()) as { error: { code: string; requestId: string } };
        expect([res.status, body.error.code], `${method} ${path}`).toEqual([
          405,
          "METHOD_NOT_ALLOWED",
        ]);
        expect(res.headers.get("allow")?.split(", "), `${method} ${path}`).toEqual(allow);
        expect(body.error.requestId).toBe(res.headers.get("x-request-id"));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it("keeps 404 NOT_FOUND, without Allow, for a path no route serves", async () => {
    for (const path of ["/no/such/route", `/workspaces/${ID}/nothing`, "/workspaces/"]) {
      const res = await app.request(path, { method: "PUT" });
      expect(res.status, path).toBe(404);
      expect(res.headers.get("allow"), path).toBeNull();
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
    }
  });

  it("leaves served methods alone: an admin route without a token is still 401", async () => {
    const res = await app.request("/workspaces", { method: "GET" });
    expect(res.status).toBe(401);
  });
});
