import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createTestContext, dbKind, type TestContext } from "../../support/context.js";

// A workspace id is a uuid, and PostgreSQL compares uuids case-insensitively: the admin was
// served an id written in upper case while the workspace's own token was refused (403) on its
// own download. The rule: path ids are canonicalised to lower case at the route boundary, for
// every `{id}` route and every caller. The routes come from the OpenAPI document, so a new one
// is covered the day it is documented.

let t: TestContext;

beforeAll(async () => {
  t = await createTestContext();
});
afterAll(async () => {
  await t?.close();
});
beforeEach(async () => {
  await t.reset();
});

async function externalWorkspace(name = "puller"): Promise<{ id: string; token: string }> {
  const res = await t.admin("POST", "/workspaces", { name, runtime: "external" });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { workspace: { id: string }; token: string };
  return { id: body.workspace.id, token: body.token };
}

const bodies: Record<string, unknown> = {
  "POST /workspaces/{id}/plugins": { source: "local://code-review" },
};

async function idRoutes(): Promise<{ method: string; path: string }[]> {
  const doc = (await (await t.app.request("/openapi.json")).json()) as {
    paths: Record<string, Record<string, unknown>>;
  };
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    path.includes("{id}") ? Object.keys(ops).map((method) => ({ method, path })) : [],
  );
}

describe(`path ids in any letter case over ${dbKind()}`, () => {
  it("a workspace token downloads its own plugin with the id in upper case, as the admin does", async () => {
    // Prepare
    const ws = await externalWorkspace();
    const path = `/workspaces/${ws.id.toUpperCase()}/plugins/code-review/download`;

    // Act
    const own = await t.as(ws.token, "GET", path);
    const admin = await t.admin("GET", path);

    // Assess
    expect(own.status).toBe(200);
    expect(own.headers.get("x-plugin-name")).toBe("code-review");
    expect(admin.status).toBe(200);
  });

  it("another workspace's token is still refused, whatever the case", async () => {
    const ws = await externalWorkspace("a");
    const other = await externalWorkspace("b");
    for (const id of [ws.id, ws.id.toUpperCase()]) {
      const res = await t.as(other.token, "GET", `/workspaces/${id}/plugins/code-review/download`);
      expect(res.status).toBe(403);
    }
  });

  it("every {id} route answers an upper-case id as it answers the lower-case one", async () => {
    // Prepare
    const ws = await externalWorkspace();
    const routes = await idRoutes();
    expect(routes.length).toBeGreaterThan(8);
    // DELETE /workspaces/{id} last: it ends the workspace.
    routes.sort(
      (a, b) =>
        Number(a.path === "/workspaces/{id}" && a.method === "delete") -
        Number(b.path === "/workspaces/{id}" && b.method === "delete"),
    );

    for (const { method, path } of routes) {
      const at = (id: string) =>
        path
          .replace("{id}", id)
          .replace("{name}", "code-review")
          .replace("{commandId}", "00000000-0000-4000-8000-000000000000");
      const key = `${method.toUpperCase()} ${path}`;
      const send = (id: string) => t.admin(method.toUpperCase(), at(id), bodies[key]);

      // Act: upper case first, so a route that changes state (DELETE) is judged on it.
      const upper = await send(ws.id.toUpperCase());
      const lower = await send(ws.id);

      // Assess
      if (key === "DELETE /workspaces/{id}") {
        expect(upper.status, key).toBe(200);
        const body = (await upper.json()) as { workspace: { id: string; status: string } };
        expect(body.workspace).toMatchObject({ id: ws.id, status: "removed" });
        continue;
      }
      expect(upper.status, key).toBe(lower.status);
      const text = await upper.text();
      // Found: a route about something inside the workspace (a command) may still answer its
      // own 404, never the workspace's.
      if (upper.status === 404) {
        expect(JSON.parse(text).error.code, key).not.toMatch(/^(WORKSPACE_)?NOT_FOUND$/);
      }
      expect(text, key).not.toContain(ws.id.toUpperCase());
    }
  });
});
