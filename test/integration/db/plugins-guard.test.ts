import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Db } from "../../../lib/db/client.js";
import { workspacePlugins } from "../../../lib/db/schema.js";
import { type Log, silentLog } from "../../../lib/deps.js";
import { createApp } from "../../../lib/http/app.js";
import { isExternalRuntime } from "../../../lib/plugins/guard.js";
import { ADMIN_TOKEN, createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { startTarballServer, type TarballServer } from "../../support/plugin-fixtures.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// The external-runtime guard of install and uninstall (the seed's 422): an external workspace is
// refused with a hint to the download endpoint *before any source is fetched*. A loopback
// stand-in for GITHUB_TARBALL_BASE counts every request, so "nothing was fetched" is observed.

let c: ComputeCloud;
let t: TestContext;
let github: TarballServer;

beforeAll(async () => {
  c = await startComputeCloud();
  // Every tarball is missing: a request that reaches the server answers 404 PLUGIN_NOT_FOUND.
  github = await startTarballServer((_req, res) => {
    res.writeHead(404);
    res.end();
  });
  t = await createTestContext({
    env: { GITHUB_TARBALL_BASE: github.url },
    aws: c.clients({ maxAttempts: 2 }),
  });
});
afterAll(async () => {
  await t?.close();
  await github?.close();
  await c?.close();
});
beforeEach(async () => {
  await t.reset();
  await c.resetStats();
  github.requests.length = 0;
});

interface ErrorBody {
  error: { code: string; message: string; hint?: string };
}

async function createExternal(): Promise<string> {
  const res = await t.admin("POST", "/workspaces", { name: "laptop-agent", runtime: "external" });
  expect(res.status).toBe(201);
  return ((await res.json()) as { workspace: { id: string } }).workspace.id;
}

/** An instance-backed workspace whose instance runs and whose SSM agent is online. */
async function createRunning(): Promise<string> {
  const res = await t.admin("POST", "/workspaces", { name: "ec2-agent" });
  const { workspace } = (await res.json()) as { workspace: { id: string; instanceId: string } };
  await waitFor(async () => {
    const view = await c.instance(workspace.instanceId);
    return view.state === "running" && view.ssmPingStatus === "Online" ? true : undefined;
  });
  return workspace.id;
}

async function answer(res: Response) {
  return { status: res.status, body: (await res.json()) as ErrorBody };
}

/** The database, except that the guard's runtime lookup (a select of `runtime` alone) throws. */
function withFailingRuntimeLookup(db: Db): Db {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "select") {
        return (fields?: Record<string, unknown>) => {
          if (fields && Object.keys(fields).join() === "runtime") {
            throw new Error("connection reset while looking up the runtime");
          }
          return fields === undefined ? target.select() : target.select(fields as never);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe(`the external-runtime guard over ${dbKind()}`, () => {
  it.each([
    ["github://acme/plugins#v1", "<name>"],
    ["local://code-review", "code-review"],
    ["code-review", "code-review"],
  ])(
    "install of %s on an external workspace → 422 with the download hint, nothing fetched",
    async (source, name) => {
      const id = await createExternal();
      const { status, body } = await answer(
        await t.admin("POST", `/workspaces/${id}/plugins`, { source }),
      );
      expect(status).toBe(422);
      expect(body.error.code).toBe("EXTERNAL_RUNTIME");
      expect(body.error.hint).toBe(`GET /workspaces/${id}/plugins/${name}/download`);
      expect(github.requests).toEqual([]);
      expect(await c.calls("ec2:DescribeInstances")).toBe(0);
      expect(await t.opened.db.select().from(workspacePlugins)).toEqual([]);
    },
  );

  it("refuses an external install before judging the source or the allowlist", async () => {
    const id = await createExternal();
    await t.admin("PUT", "/plugins/allowlist", { names: ["something-else"] });
    for (const source of [
      "ftp://x/y",
      "Bad Name",
      "github://acme/unpinned",
      "local://code-review",
    ]) {
      const { status, body } = await answer(
        await t.admin("POST", `/workspaces/${id}/plugins`, { source }),
      );
      expect([status, body.error.code]).toEqual([422, "EXTERNAL_RUNTIME"]);
    }
    expect(github.requests).toEqual([]);
  });

  it("uninstall on an external workspace → 422 with the download hint, nothing fetched", async () => {
    const id = await createExternal();
    const { status, body } = await answer(
      await t.admin("DELETE", `/workspaces/${id}/plugins/code-review`),
    );
    expect(status).toBe(422);
    expect(body.error.code).toBe("EXTERNAL_RUNTIME");
    expect(body.error.hint).toBe(`GET /workspaces/${id}/plugins/code-review/download`);
    expect(github.requests).toEqual([]);
    expect(await c.calls("ec2:DescribeInstances")).toBe(0);
    expect(await c.calls("ssm:SendCommand")).toBe(0);
  });

  it("an instance-backed workspace passes the guard and reaches the fetch", async () => {
    const id = await createRunning();
    const { status, body } = await answer(
      await t.admin("POST", `/workspaces/${id}/plugins`, { source: "github://acme/plugins#v1" }),
    );
    expect([status, body.error.code]).toEqual([404, "PLUGIN_NOT_FOUND"]);
    expect(github.requests).toEqual([{ method: "GET", path: "/acme/plugins/tar.gz/v1" }]);
  });

  describe("when the runtime lookup fails, the guard fails open", () => {
    let warnings: string[];
    let app: ReturnType<typeof createApp>;
    beforeEach(() => {
      warnings = [];
      const log: Log = { ...silentLog, warn: (message) => warnings.push(message) };
      app = createApp({ ...t.deps, db: withFailingRuntimeLookup(t.deps.db), log });
    });
    const request = (method: string, path: string, body?: unknown) =>
      app.request(path, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });

    it("the predicate answers false and logs the error", async () => {
      const id = await createExternal();
      const deps = {
        db: withFailingRuntimeLookup(t.deps.db),
        log: { ...silentLog, warn: (m: string) => warnings.push(m) },
      };
      expect(await isExternalRuntime(deps, id)).toBe(false);
      expect(await isExternalRuntime(t.deps, id)).toBe(true);
      expect(warnings).toEqual([expect.stringContaining("fails open")]);
    });

    it("an instance-backed install continues to the fetch", async () => {
      const id = await createRunning();
      const { status, body } = await answer(
        await request("POST", `/workspaces/${id}/plugins`, { source: "github://acme/plugins#v1" }),
      );
      expect([status, body.error.code]).toEqual([404, "PLUGIN_NOT_FOUND"]);
      expect(github.requests.length).toBeGreaterThanOrEqual(1);
      expect(warnings).toEqual([expect.stringContaining("fails open")]);
    });

    it("an external install is not refused by the guard; the running check answers instead", async () => {
      const id = await createExternal();
      const { status, body } = await answer(
        await request("POST", `/workspaces/${id}/plugins`, { source: "github://acme/plugins#v1" }),
      );
      expect([status, body.error.code]).toEqual([503, "INSTANCE_NOT_RUNNING"]);
      expect(github.requests).toEqual([]);
      expect(warnings).toEqual([expect.stringContaining("fails open")]);
    });

    it("an external uninstall is not refused by the guard; the record check answers instead", async () => {
      const id = await createExternal();
      const { status, body } = await answer(
        await request("DELETE", `/workspaces/${id}/plugins/code-review`),
      );
      expect([status, body.error.code]).toEqual([404, "PLUGIN_NOT_INSTALLED"]);
      expect(warnings).toEqual([expect.stringContaining("fails open")]);
    });
  });

  describe("with no runtime to look up", () => {
    it("a missing or malformed workspace answers 404 before the guard, nothing fetched", async () => {
      for (const id of [randomUUID(), "not-a-uuid"]) {
        const install = await answer(
          await t.admin("POST", `/workspaces/${id}/plugins`, {
            source: "github://acme/plugins#v1",
          }),
        );
        expect([install.status, install.body.error.code]).toEqual([404, "WORKSPACE_NOT_FOUND"]);
        const uninstall = await answer(
          await t.admin("DELETE", `/workspaces/${id}/plugins/code-review`),
        );
        expect([uninstall.status, uninstall.body.error.code]).toEqual([404, "WORKSPACE_NOT_FOUND"]);
      }
      expect(github.requests).toEqual([]);
    });

    it("the predicate answers false for a workspace that does not exist", async () => {
      expect(await isExternalRuntime(t.deps, randomUUID())).toBe(false);
      expect(await isExternalRuntime(t.deps, "not-a-uuid")).toBe(false);
    });
  });

  it("checks the body and a removed workspace before the guard", async () => {
    const id = await createExternal();
    const invalid = await answer(await t.admin("POST", `/workspaces/${id}/plugins`, { src: "x" }));
    expect([invalid.status, invalid.body.error.code]).toEqual([400, "VALIDATION_FAILED"]);
    await t.admin("DELETE", `/workspaces/${id}`);
    const removed = await answer(
      await t.admin("POST", `/workspaces/${id}/plugins`, { source: "local://code-review" }),
    );
    expect([removed.status, removed.body.error.code]).toEqual([409, "WORKSPACE_REMOVED"]);
    expect(github.requests).toEqual([]);
  });
});
