import { access, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { listWorkspacePlugins } from "../../../lib/plugins/records.js";
import type { Workspace } from "../../../lib/workspaces/model.js";
import { instanceToken } from "../../../lib/workspaces/tokens.js";
import { rowsOf } from "../../../lib/workspaces/transition.js";
import { ADMIN_TOKEN, createTestContext, dbKind, type TestContext } from "../../support/context.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// Concurrent callers against one workspace, on PGlite and (where the races are real, with many
// sessions and row locks) PostgreSQL: tokens die with their workspace whatever raced the DELETE,
// and one plugin operation at a time keeps the records equal to the instance's files.

let c: ComputeCloud;
let t: TestContext;

beforeAll(async () => {
  c = await startComputeCloud();
  t = await createTestContext({
    env: { PLUGINS_DIR: resolve("plugins") },
    aws: c.clients({ maxAttempts: 2, requestTimeoutMs: 5_000 }),
  });
});
afterAll(async () => {
  await t?.close();
  await c?.close();
});
beforeEach(async () => {
  await t.reset();
});
afterEach(async () => {
  await c.clearFaults();
});

async function createWorkspace(name: string): Promise<Workspace> {
  const res = await t.admin("POST", "/workspaces", { name });
  expect(res.status).toBe(201);
  return ((await res.json()) as { workspace: Workspace }).workspace;
}

async function createRunning(): Promise<{ id: string; dir: string }> {
  const ws = await createWorkspace("busy");
  const view = await waitFor(async () => {
    const v = await c.instance(ws.instanceId ?? "");
    return v.ssmPingStatus === "Online" ? v : undefined;
  });
  return { id: ws.id, dir: view.dir };
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

describe(`concurrent callers over ${dbKind()}`, () => {
  it("a DELETE racing restart and token mint: once it answers, no token of the workspace authenticates", async () => {
    // Prepare
    const created = await Promise.all(
      Array.from({ length: 25 }, (_, i) => createWorkspace(`race-${i}`)),
    );

    // Act: for each workspace, the three at once.
    const minted: (string | null)[] = await Promise.all(
      created.map(async (ws) => {
        const [deleted, , mint] = await Promise.all([
          t.admin("DELETE", `/workspaces/${ws.id}`),
          t.admin("POST", `/workspaces/${ws.id}/restart`),
          t.admin("POST", `/workspaces/${ws.id}/tokens`),
        ]);
        expect([200, 202]).toContain(deleted.status);
        expect([201, 409]).toContain(mint.status);
        return mint.status === 201 ? ((await mint.json()) as { token: string }).token : null;
      }),
    );

    // Assess: every token the workspaces ever had — minted, or an instance's of any generation.
    const live = await t.opened.db.execute(sql`
      select count(*)::int as n from workspace_tokens k join workspaces w on w.id = k.workspace_id
      where w.status in ('removing', 'removed') and k.revoked_at is null`);
    expect(Number(rowsOf(live)[0]?.n)).toBe(0);
    for (const [i, ws] of created.entries()) {
      const tokens = [1, 2, 3].map((g) => instanceToken(ADMIN_TOKEN, ws.id, g).token);
      const mintedToken = minted[i];
      if (mintedToken) tokens.push(mintedToken);
      for (const token of tokens) {
        expect((await t.as(token, "POST", "/registry/heartbeat")).status).toBe(401);
        const download = await t.as(
          token,
          "GET",
          `/workspaces/${ws.id}/plugins/code-review/download`,
        );
        expect(download.status).toBe(401);
      }
    }
  });

  it("six concurrent installs of one plugin: one installs, five answer 409 PLUGIN_BUSY", async () => {
    // Prepare
    const ws = await createRunning();

    // Act
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        t.admin("POST", `/workspaces/${ws.id}/plugins`, { source: "local://code-review" }),
      ),
    );

    // Assess
    const codes = await Promise.all(
      answers.map(async (r) =>
        r.status === 200
          ? 200
          : `${r.status} ${((await r.json()) as { error: { code: string } }).error.code}`,
      ),
    );
    expect(codes.filter((x) => x === 200)).toHaveLength(1);
    expect(codes.filter((x) => x === "409 PLUGIN_BUSY")).toHaveLength(5);
    const records = await listWorkspacePlugins(t.opened.db, ws.id);
    expect(records.map((r) => [r.name, r.state, r.opId])).toEqual([
      ["code-review", "installed", null],
    ]);
    expect(await readFile(join(ws.dir, "configs/skills/review/SKILL.md"), "utf8")).toContain(
      "name: review",
    );
  });

  it("an install racing an uninstall: one operation runs, the record agrees with the files", async () => {
    // Prepare: installed once, then an upgrade and an uninstall at the same moment.
    const ws = await createRunning();
    const first = await t.admin("POST", `/workspaces/${ws.id}/plugins`, {
      source: "local://code-review",
    });
    expect(first.status).toBe(200);

    // Act: the uninstall's send is slow, so its claim is held while the install stages.
    await c.fault({ service: "ssm", action: "SendCommand", latencyMs: 700, times: 1 });
    const [install, uninstall] = await Promise.all([
      t.admin("POST", `/workspaces/${ws.id}/plugins`, { source: "local://code-review" }),
      t.admin("DELETE", `/workspaces/${ws.id}/plugins/code-review`),
    ]);

    // Assess: exactly one ran; no 500; the record says what the instance holds.
    const statuses = [install.status, uninstall.status].sort();
    expect(statuses).toEqual([200, 409]);
    const records = await listWorkspacePlugins(t.opened.db, ws.id);
    const onDisk = await exists(join(ws.dir, "configs/plugins/code-review/plugin.yaml"));
    if (uninstall.status === 200) {
      expect(records).toEqual([]);
      expect(onDisk).toBe(false);
    } else {
      expect(records.map((r) => r.state)).toEqual(["installed"]);
      expect(onDisk).toBe(true);
    }
  });
});
