import { Validator } from "@seriousme/openapi-schema-validator";
import { describe, expect, it } from "vitest";
import { createApp } from "../../lib/http/app.js";
import { unitDeps } from "../support/unit-deps.js";

const app = createApp(unitDeps());

async function document() {
  const res = await app.request("/openapi.json");
  expect(res.status).toBe(200);
  return (await res.json()) as {
    openapi: string;
    paths: Record<
      string,
      Record<string, { responses: Record<string, unknown>; security?: unknown }>
    >;
  };
}

describe("the OpenAPI document", () => {
  it("validates as OpenAPI 3.1", async () => {
    const doc = await document();
    expect(doc.openapi).toBe("3.1.0");
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("declares every route the app serves", async () => {
    const doc = await document();
    const declared = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`),
      ),
    );
    const served = app.routes
      // The document itself and the reference UI's page and script are not API routes.
      .filter(
        (r) =>
          r.method !== "ALL" && !["/openapi.json", "/docs", "/docs/assets/:file"].includes(r.path),
      )
      .map((r) => `${r.method} ${r.path}`);
    expect(served.length).toBeGreaterThan(5);
    for (const route of served) expect(declared).toContain(route);
  });

  it("declares the error body for every authenticated route's 401 and 500", async () => {
    const doc = await document();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(Object.keys(op.responses), `${method} ${path}`).toContain("500");
        if (op.security) expect(Object.keys(op.responses), `${method} ${path}`).toContain("401");
      }
    }
  });

  it("serves an API reference page for the document", async () => {
    const res = await app.request("/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(await res.text()).toContain("/openapi.json");
  });
});
