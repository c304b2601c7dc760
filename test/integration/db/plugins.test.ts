import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { workspacePlugins, workspaces } from "../../../lib/db/schema.js";
import type { Deps } from "../../../lib/deps.js";
import { createApp } from "../../../lib/http/app.js";
import { stagedArchiveKey } from "../../../lib/plugins/install.js";
import { type DriveOutcome, driveOperation } from "../../../lib/plugins/reconcile.js";
import { getWorkspacePlugin } from "../../../lib/plugins/records.js";
import { defaultSourceRegistry, type PluginSource } from "../../../lib/plugins/sources.js";
import { packPlugin, stagePlugin } from "../../../lib/plugins/staging.js";
import { runSweep } from "../../../lib/sweep/run.js";
import { ADMIN_TOKEN, createTestContext, dbKind, type TestContext } from "../../support/context.js";
import {
  githubTarball,
  listTree,
  type PluginSpec,
  pluginFiles,
  startTarballServer,
  type TarballServer,
} from "../../support/plugin-fixtures.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// Plugins end to end: the API over the database (PGlite and PostgreSQL), the local cloud's
// EC2/SSM/S3 through the real SDK, instance commands run by /bin/sh in the instance's
// directory, the real sample registry in plugins/, and a loopback stand-in for codeload.

const REGISTRY = resolve("plugins");
let c: ComputeCloud;
let t: TestContext;
let github: TarballServer;
/** Tarballs the loopback GITHUB_TARBALL_BASE serves, by request path. */
const tarballs = new Map<string, Buffer>();

beforeAll(async () => {
  c = await startComputeCloud();
  github = await startTarballServer((req, res) => {
    const body = tarballs.get(req.url ?? "");
    res.writeHead(body ? 200 : 404, { "content-type": "application/x-gzip" });
    res.end(body);
  });
  t = await createTestContext({
    env: { GITHUB_TARBALL_BASE: github.url, PLUGINS_DIR: REGISTRY },
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
  tarballs.clear();
  github.requests.length = 0;
});
afterEach(async () => {
  await c.clearFaults();
});

/** What the sweep's plugins pass does to one record: drive its operation on. */
async function drive(
  deps: Deps,
  key: { workspaceId: string; name: string },
): Promise<DriveOutcome> {
  const row = await getWorkspacePlugin(deps.db, key);
  return row ? driveOperation(deps, row) : "skipped";
}

interface ErrorBody {
  error: { code: string; message: string; hint?: string };
}
interface Running {
  id: string;
  instanceId: string;
  /** The instance's disk: where $WORKSPACE_ROOT points. */
  dir: string;
}

async function createRunning(): Promise<Running> {
  const res = await t.admin("POST", "/workspaces", { name: "ec2-agent" });
  const { workspace } = (await res.json()) as { workspace: { id: string; instanceId: string } };
  const view = await waitFor(async () => {
    const v = await c.instance(workspace.instanceId);
    return v.state === "running" && v.ssmPingStatus === "Online" ? v : undefined;
  });
  return { id: workspace.id, instanceId: workspace.instanceId, dir: view.dir };
}

async function createExternal(): Promise<{ id: string; token: string }> {
  const res = await t.admin("POST", "/workspaces", { name: "laptop", runtime: "external" });
  const body = (await res.json()) as { workspace: { id: string }; token: string };
  return { id: body.workspace.id, token: body.token };
}

async function errorOf(res: Response): Promise<[number, string, ErrorBody["error"]]> {
  const body = (await res.json()) as ErrorBody;
  return [res.status, body.error.code, body.error];
}

const install = (id: string, body: Record<string, unknown>, app = t.app) =>
  app.request(`/workspaces/${id}/plugins`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** Path → content of every file under `dir` (directories omitted). */
async function contents(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const path of await listTree(dir)) {
    try {
      out[path] = await readFile(join(dir, path), "utf8");
    } catch {
      // A directory.
    }
  }
  return out;
}

/** The canonical digest of a source, computed here the way staging defines it. */
async function digestOf(source: PluginSource): Promise<string> {
  const staged = await stagePlugin(t.deps, source);
  if (staged.kind !== "staged") throw new Error(staged.message);
  await staged.plugin.cleanup();
  return staged.plugin.digest;
}

function parse(raw: string): PluginSource {
  const parsed = defaultSourceRegistry().parse(raw, t.deps.config);
  if (parsed.kind !== "parsed") throw new Error(parsed.message);
  return parsed.source;
}

/** A source for bytes already in hand (a downloaded tarball). */
const bytesSource = (archive: Uint8Array): PluginSource => ({
  scheme: "bytes",
  canonical: "bytes://download",
  name: null,
  open: async () => ({
    kind: "tar.gz",
    body: (async function* () {
      yield archive;
    })(),
    stripComponents: 0,
  }),
});

/** code-review 1.3.0 on the loopback GitHub, with an extra skill and file. */
function serveCodeReviewV2(ref = "v1.3.0"): PluginSpec {
  const spec: PluginSpec = {
    name: "code-review",
    version: "1.3.0",
    skills: ["review", "summarize"],
    files: { "CHANGELOG.md": "1.3.0: summarize skill\n" },
  };
  tarballs.set(`/acme/code-review/tar.gz/${ref}`, githubTarball(spec));
  return spec;
}

async function rows(workspaceId: string) {
  return t.opened.db
    .select()
    .from(workspacePlugins)
    .where(eq(workspacePlugins.workspaceId, workspaceId));
}

describe(`plugins end to end over ${dbKind()}`, () => {
  describe("registry and allowlist", () => {
    it("lists the curated registry, filtered by runtime", async () => {
      const all = (await (await t.admin("GET", "/plugins")).json()) as {
        plugins: { name: string }[];
      };
      expect(all.plugins.map((p) => p.name)).toEqual([
        "code-review",
        "incident-triage",
        "prompt-library",
      ]);
      const res = await t.admin("GET", "/plugins?runtime=claude_code");
      expect(res.status).toBe(200);
      const filtered = (await res.json()) as { plugins: { name: string; skills: string[] }[] };
      expect(filtered.plugins.map((p) => p.name)).toEqual(["code-review", "incident-triage"]);
      expect(filtered.plugins[0]?.skills).toEqual(["review"]);
    });

    it("replaces and reads the allowlist; empty allows everything", async () => {
      expect(await (await t.admin("GET", "/plugins/allowlist")).json()).toEqual({ names: [] });
      const put = await t.admin("PUT", "/plugins/allowlist", {
        names: ["prompt-library", "code-review", "code-review"],
      });
      expect(put.status).toBe(200);
      expect(await put.json()).toEqual({ names: ["code-review", "prompt-library"] });
      expect(await (await t.admin("GET", "/plugins/allowlist")).json()).toEqual({
        names: ["code-review", "prompt-library"],
      });
      const [status, code] = await errorOf(
        await t.admin("PUT", "/plugins/allowlist", { names: ["ok", "Not OK"] }),
      );
      expect([status, code]).toEqual([400, "INVALID_PLUGIN_NAME"]);
      // The failed write changed nothing.
      expect(await (await t.admin("GET", "/plugins/allowlist")).json()).toEqual({
        names: ["code-review", "prompt-library"],
      });
      expect((await t.admin("PUT", "/plugins/allowlist", { names: [] })).status).toBe(200);
      expect(await (await t.admin("GET", "/plugins/allowlist")).json()).toEqual({ names: [] });
    });

    it("refuses a plugin off the allowlist: by the source's name before any fetch, by the manifest's after", async () => {
      const ws = await createRunning();
      await t.admin("PUT", "/plugins/allowlist", { names: ["prompt-library"] });
      const [s1, c1] = await errorOf(await install(ws.id, { source: "local://code-review" }));
      expect([s1, c1]).toEqual([403, "PLUGIN_NOT_ALLOWED"]);
      expect(await c.calls("ec2:DescribeInstances")).toBe(0);
      serveCodeReviewV2();
      const [s2, c2] = await errorOf(
        await install(ws.id, { source: "github://acme/code-review#v1.3.0" }),
      );
      expect([s2, c2]).toEqual([403, "PLUGIN_NOT_ALLOWED"]);
      expect(github.requests.length).toBeGreaterThan(0);
      expect(await c.calls("ssm:SendCommand")).toBe(0);
      expect(await rows(ws.id)).toEqual([]);
    });
  });

  describe("install, reinstall, uninstall on a running instance", () => {
    it("installs a sample plugin: its files under configs/plugins, its skill under configs/skills", async () => {
      // Prepare
      const ws = await createRunning();
      const expectedDigest = await digestOf(parse("local://code-review"));
      // Act
      const res = await install(ws.id, { source: "local://code-review" });
      // Assess
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        status: "installed",
        plugin: "code-review",
        version: "1.2.0",
        source: "local://code-review",
        digest: expectedDigest,
      });
      expect(await contents(join(ws.dir, "configs/plugins/code-review"))).toEqual(
        await contents(join(REGISTRY, "code-review")),
      );
      expect(await readFile(join(ws.dir, "configs/skills/review/SKILL.md"), "utf8")).toBe(
        await readFile(join(REGISTRY, "code-review/skills/review/SKILL.md"), "utf8"),
      );
      expect(await readFile(join(ws.dir, "configs/skills/review/checklist.md"), "utf8")).toContain(
        "Review checklist",
      );
      const listed = (await (await t.admin("GET", `/workspaces/${ws.id}/plugins`)).json()) as {
        plugins: Record<string, unknown>[];
      };
      expect(listed.plugins).toEqual([
        {
          name: "code-review",
          version: "1.2.0",
          source: "local://code-review",
          digest: expectedDigest,
          state: "installed",
          commandId: expect.any(String),
          error: null,
          updatedAt: expect.any(String),
        },
      ]);
      expect(await c.calls("ssm:SendCommand")).toBe(1);
    });

    it("accepts the expected sha256, refuses another one before sending anything", async () => {
      const ws = await createRunning();
      const digest = await digestOf(parse("local://prompt-library"));
      const [status, code] = await errorOf(
        await install(ws.id, { source: "prompt-library", sha256: "a".repeat(64) }),
      );
      expect([status, code]).toEqual([422, "INTEGRITY_MISMATCH"]);
      expect(await c.calls("ssm:SendCommand")).toBe(0);
      expect(await listTree(join(ws.dir, "configs/plugins"))).toEqual([]);
      const ok = await install(ws.id, { source: "prompt-library", sha256: digest.toUpperCase() });
      expect(ok.status).toBe(200);
      expect(await listTree(join(ws.dir, "configs/plugins/prompt-library/prompts"))).toEqual([
        "extract-json.md",
        "rewrite-plain.md",
        "summarize.md",
      ]);
    });

    it("reinstalls a new version from github:// in place, with its new skill", async () => {
      const ws = await createRunning();
      expect((await install(ws.id, { source: "local://code-review" })).status).toBe(200);
      const v2 = serveCodeReviewV2();
      const res = await install(ws.id, { source: "github://acme/code-review#v1.3.0" });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { version: string; source: string; digest: string };
      expect(body).toMatchObject({ version: "1.3.0", source: "github://acme/code-review#v1.3.0" });
      expect(body.digest).toBe(await digestOf(parse("github://acme/code-review#v1.3.0")));
      expect(await contents(join(ws.dir, "configs/plugins/code-review"))).toEqual(pluginFiles(v2));
      expect(await listTree(join(ws.dir, "configs/skills"))).toEqual([
        "review",
        "review/.wcp-plugin",
        "review/SKILL.md",
        "summarize",
        "summarize/.wcp-plugin",
        "summarize/SKILL.md",
      ]);
      // No staging or backup directory is left next to the plugin.
      expect(await listTree(join(ws.dir, "configs/plugins"))).not.toContainEqual(
        expect.stringMatching(/^\./),
      );
      expect((await rows(ws.id)).map((r) => [r.version, r.state])).toEqual([
        ["1.3.0", "installed"],
      ]);
    });

    it("a failure after the download (the archive fails its sha256) leaves the previous version intact", async () => {
      // Prepare: v1 installed; v2's archive will be swapped in S3 while the instance's download
      // is held back by a latency fault, so the program downloads bytes that fail its check.
      const ws = await createRunning();
      expect((await install(ws.id, { source: "local://code-review" })).status).toBe(200);
      const before = await contents(join(ws.dir, "configs"));
      serveCodeReviewV2();
      const staged = await stagePlugin(t.deps, parse("github://acme/code-review#v1.3.0"));
      if (staged.kind !== "staged") throw new Error(staged.message);
      const key = stagedArchiveKey("code-review", (await packPlugin(staged.plugin)).sha256);
      await staged.plugin.cleanup();
      await c.fault({ service: "s3", action: "GetObject", latencyMs: 1500, times: 1 });
      const sendsBefore = await c.calls("ssm:SendCommand");
      // Act
      const pending = install(ws.id, { source: "github://acme/code-review#v1.3.0" });
      await waitFor(async () =>
        (await c.calls("ssm:SendCommand")) > sendsBefore ? true : undefined,
      );
      await t.deps.aws.s3.send(
        new PutObjectCommand({ Bucket: t.deps.config.stagingBucket, Key: key, Body: "tampered" }),
      );
      const [status, code, error] = await errorOf(await pending);
      // Assess
      expect([status, code]).toEqual([502, "COMMAND_FAILED"]);
      expect(error.message).toContain("sha256 mismatch");
      expect(error.message).not.toMatch(/X-Amz-(Signature|Credential)/);
      expect(await contents(join(ws.dir, "configs"))).toEqual(before);
      // The record says what the instance holds: the previous version, with why v2 did not land.
      const [row] = await rows(ws.id);
      expect(row).toMatchObject({
        state: "installed",
        version: "1.2.0",
        source: "local://code-review",
      });
      expect(row?.error).toContain("sha256 mismatch");
    });

    it("uninstalls: the plugin's directory and skills go, the record goes", async () => {
      const ws = await createRunning();
      expect((await install(ws.id, { source: "local://incident-triage" })).status).toBe(200);
      expect((await install(ws.id, { source: "local://code-review" })).status).toBe(200);
      const res = await t.admin("DELETE", `/workspaces/${ws.id}/plugins/incident-triage`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "uninstalled", plugin: "incident-triage" });
      expect(await listTree(join(ws.dir, "configs/plugins"))).toEqual(
        (await listTree(join(REGISTRY, "code-review")))
          .map((p) => `code-review/${p}`)
          .concat("code-review")
          .sort(),
      );
      expect(
        (await listTree(join(ws.dir, "configs/skills"))).filter((p) => !p.includes("/")),
      ).toEqual(["review"]);
      expect((await rows(ws.id)).map((r) => r.name)).toEqual(["code-review"]);
      const [status, code] = await errorOf(
        await t.admin("DELETE", `/workspaces/${ws.id}/plugins/incident-triage`),
      );
      expect([status, code]).toEqual([404, "PLUGIN_NOT_INSTALLED"]);
    });
  });

  describe("when the instance cannot take a command", () => {
    it("a crashed instance → 503 INSTANCE_NOT_RUNNING for install and uninstall, nothing sent", async () => {
      const ws = await createRunning();
      expect((await install(ws.id, { source: "local://prompt-library" })).status).toBe(200);
      await c.crash(ws.instanceId);
      await c.resetStats();
      const [s1, c1, e1] = await errorOf(await install(ws.id, { source: "local://code-review" }));
      expect([s1, c1]).toEqual([503, "INSTANCE_NOT_RUNNING"]);
      expect(e1.message).toMatch(/not running/);
      const [s2, c2] = await errorOf(
        await t.admin("DELETE", `/workspaces/${ws.id}/plugins/prompt-library`),
      );
      expect([s2, c2]).toEqual([503, "INSTANCE_NOT_RUNNING"]);
      expect(await c.calls("ssm:SendCommand")).toBe(0);
      expect((await rows(ws.id)).map((r) => r.state)).toEqual(["installed"]);
    });

    it("a failing DescribeInstances → 503 INSTANCE_STATE_UNKNOWN, a different message, nothing fetched", async () => {
      const ws = await createRunning();
      serveCodeReviewV2();
      await c.fault({
        service: "ec2",
        action: "DescribeInstances",
        error: "InternalError",
        times: 10,
      });
      const [status, code, error] = await errorOf(
        await install(ws.id, { source: "github://acme/code-review#v1.3.0" }),
      );
      expect([status, code]).toEqual([503, "INSTANCE_STATE_UNKNOWN"]);
      expect(error.message).toMatch(/Could not tell/);
      expect(error.message).not.toMatch(/not running/);
      expect(github.requests).toEqual([]);
      expect(await c.calls("ssm:SendCommand")).toBe(0);
    });

    it("a workspace whose launch is still pending → 503 INSTANCE_NOT_RUNNING with a hint", async () => {
      await c.fault({
        service: "ec2",
        action: "RunInstances",
        error: "RequestLimitExceeded",
        times: 10,
      });
      const created = (await (
        await t.admin("POST", "/workspaces", { name: "pending" })
      ).json()) as {
        workspace: { id: string; instanceId: string | null };
      };
      expect(created.workspace.instanceId).toBeNull();
      const [status, code, error] = await errorOf(
        await install(created.workspace.id, { source: "code-review" }),
      );
      expect([status, code]).toEqual([503, "INSTANCE_NOT_RUNNING"]);
      expect(error.hint).toMatch(/pending/);
    });

    it("an SSM agent that is not reachable → 503 INSTANCE_UNREACHABLE, nothing recorded", async () => {
      const ws = await createRunning();
      await c.fault({
        service: "ssm",
        action: "SendCommand",
        error: "InvalidInstanceId",
        times: 1,
      });
      const [status, code] = await errorOf(await install(ws.id, { source: "code-review" }));
      expect([status, code]).toEqual([503, "INSTANCE_UNREACHABLE"]);
      expect(await rows(ws.id)).toEqual([]);
    });
  });

  describe("when the staging bucket fails", () => {
    it("a transient S3 error → 503 UPSTREAM_UNAVAILABLE, a refused put → 500; nothing sent", async () => {
      const ws = await createRunning();
      await c.fault({ service: "s3", action: "PutObject", error: "InternalError", times: 10 });
      const transient = await errorOf(await install(ws.id, { source: "code-review" }));
      expect(transient.slice(0, 2)).toEqual([503, "UPSTREAM_UNAVAILABLE"]);
      await c.clearFaults();
      await c.fault({ service: "s3", action: "PutObject", error: "AccessDenied", times: 10 });
      const refused = await errorOf(await install(ws.id, { source: "code-review" }));
      expect(refused.slice(0, 2)).toEqual([500, "INTERNAL"]);
      expect(refused[2].message).toContain("AccessDenied");
      expect(await c.calls("ssm:SendCommand")).toBe(0);
      expect(await rows(ws.id)).toEqual([]);
    });
  });

  describe("an install that outlasts INSTALL_SYNC_WAIT_SECONDS", () => {
    it("answers 202, refuses a concurrent install or uninstall, and the sweep completes it", async () => {
      // Prepare: an app that waits 0.2 s; the instance's download is held back 2.5 s.
      const deps: Deps = { ...t.deps, config: { ...t.deps.config, installSyncWaitSeconds: 0.2 } };
      const app = createApp(deps);
      const ws = await createRunning();
      await c.fault({ service: "s3", action: "GetObject", latencyMs: 2500, times: 1 });
      // Act
      const res = await install(ws.id, { source: "local://code-review" }, app);
      // Assess
      expect(res.status).toBe(202);
      const body = (await res.json()) as { status: string; plugin: string; commandId: string };
      expect(body).toEqual({
        status: "installing",
        plugin: "code-review",
        commandId: expect.any(String),
      });
      expect((await rows(ws.id)).map((r) => [r.state, r.commandId])).toEqual([
        ["installing", body.commandId],
      ]);
      const again = await errorOf(await install(ws.id, { source: "local://code-review" }, app));
      expect(again.slice(0, 2)).toEqual([409, "PLUGIN_BUSY"]);
      expect(again[2].message).toContain(body.commandId);
      const removing = await errorOf(
        await t.admin("DELETE", `/workspaces/${ws.id}/plugins/code-review`),
      );
      expect(removing.slice(0, 2)).toEqual([409, "PLUGIN_BUSY"]);
      const key = { workspaceId: ws.id, name: "code-review" };
      expect(await drive(deps, key)).toBe("pending");

      const outcome = await waitFor(async () => {
        const o = await drive(deps, key);
        return o === "pending" ? undefined : o;
      }, 15_000);
      expect(outcome).toBe("finished");
      expect((await rows(ws.id)).map((r) => [r.state, r.version])).toEqual([
        ["installed", "1.2.0"],
      ]);
      expect(await readFile(join(ws.dir, "configs/skills/review/SKILL.md"), "utf8")).toContain(
        "name: review",
      );
      // Finishing twice is harmless.
      expect(await drive(deps, key)).toBe("skipped");
    });

    it("the sweep fails a claim whose command never finished, or whose workspace is gone", async () => {
      const ws = await createRunning();
      const base = {
        workspaceId: ws.id,
        version: "1.0.0",
        source: "local://x",
        digest: "0".repeat(64),
        state: "installing" as const,
        commandId: "00000000-0000-4000-8000-000000000000",
        instanceId: ws.instanceId,
      };
      const old = new Date(Date.now() - 3_600_000);
      await t.opened.db.insert(workspacePlugins).values([
        { ...base, name: "fresh", opId: "00000000-0000-4000-8000-000000000001" },
        { ...base, name: "stale", updatedAt: old, opId: "00000000-0000-4000-8000-000000000002" },
      ]);
      const key = (name: string) => ({ workspaceId: ws.id, name });
      expect(await drive(t.deps, key("fresh"))).toBe("pending");
      expect(await drive(t.deps, key("stale"))).toBe("finished");
      expect(await drive(t.deps, key("absent"))).toBe("skipped");
      await t.admin("DELETE", `/workspaces/${ws.id}`);
      expect(await drive(t.deps, key("fresh"))).toBe("finished");
      const states = Object.fromEntries(
        (await rows(ws.id)).map((r) => [r.name, [r.state, r.error]]),
      );
      expect(states).toEqual({
        fresh: ["failed", expect.stringMatching(/workspace was removed/)],
        stale: ["failed", expect.stringMatching(/did not finish/)],
      });
    });
  });

  describe("a restart", () => {
    /** Sweeps readiness and plugins until the record reads `state`, like the schedule would. */
    async function sweepUntil(deps: Deps, id: string, state: string) {
      return waitFor(async () => {
        await runSweep(deps, {
          budget: { remainingMs: () => 60_000 },
          passes: ["readiness", "plugins"],
        });
        const listed = await rows(id);
        return listed.every((r) => r.state === state) ? listed : undefined;
      }, 15_000);
    }

    it("re-applies the installed plugins to the new, empty instance once it is online", async () => {
      // Prepare
      const ws = await createRunning();
      expect((await install(ws.id, { source: "local://code-review" })).status).toBe(200);

      // Act
      const restarted = await t.admin("POST", `/workspaces/${ws.id}/restart`);
      const during = await rows(ws.id);
      const { workspace } = (await restarted.json()) as { workspace: { instanceId: string } };
      const done = await sweepUntil(t.deps, ws.id, "installed");

      // Assess: the record waited for the new instance, then was installed there.
      expect(restarted.status).toBe(202);
      expect(during.map((r) => [r.state, r.commandId, r.instanceId])).toEqual([
        ["installing", null, null],
      ]);
      expect(done.map((r) => [r.name, r.version, r.instanceId])).toEqual([
        ["code-review", "1.2.0", workspace.instanceId],
      ]);
      const dir = (await c.instance(workspace.instanceId)).dir;
      expect(await readFile(join(dir, "configs/skills/review/SKILL.md"), "utf8")).toContain(
        "name: review",
      );
    });

    it("re-targets an install still running on the old instance (a 202), and finishes it on the new one", async () => {
      // Prepare: the install outlasts its request's wait.
      const deps: Deps = { ...t.deps, config: { ...t.deps.config, installSyncWaitSeconds: 0.2 } };
      const ws = await createRunning();
      await c.fault({ service: "s3", action: "GetObject", latencyMs: 1500, times: 1 });
      expect(
        (await install(ws.id, { source: "local://code-review" }, createApp(deps))).status,
      ).toBe(202);

      // Act
      expect((await t.admin("POST", `/workspaces/${ws.id}/restart`)).status).toBe(202);
      const retargeted = await rows(ws.id);
      const done = await sweepUntil(deps, ws.id, "installed");

      // Assess: no record is left waiting on the old instance's command.
      expect(retargeted.map((r) => [r.state, r.commandId])).toEqual([["installing", null]]);
      const row = await t.opened.db.select().from(workspaces).where(eq(workspaces.id, ws.id));
      expect(done.map((r) => r.instanceId)).toEqual([row[0]?.instanceId]);
    });

    it("drops a record that was being uninstalled: the new instance never had the files", async () => {
      // Prepare: an uninstall outlives its request (its program waits on the plugin's lock).
      const ws = await createRunning();
      expect((await install(ws.id, { source: "local://code-review" })).status).toBe(200);
      await t.opened.db
        .update(workspacePlugins)
        .set({ state: "uninstalling", opId: "00000000-0000-4000-8000-00000000000a" })
        .where(eq(workspacePlugins.workspaceId, ws.id));

      // Act
      expect((await t.admin("POST", `/workspaces/${ws.id}/restart`)).status).toBe(202);

      // Assess
      expect(await rows(ws.id)).toEqual([]);
    });
  });

  describe("download (how external agents pull plugins)", () => {
    it("serves the external agent its plugin inline; the digest recomputes from the tarball", async () => {
      const agent = await createExternal();
      const res = await t.as(
        agent.token,
        "GET",
        `/workspaces/${agent.id}/plugins/code-review/download`,
      );
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/gzip");
      expect(res.headers.get("content-disposition")).toBe(
        'attachment; filename="code-review-1.2.0.tar.gz"',
      );
      expect(res.headers.get("x-plugin-name")).toBe("code-review");
      expect(res.headers.get("x-plugin-source")).toBe("local://code-review");
      const digest = res.headers.get("x-plugin-digest");
      const archive = new Uint8Array(await res.arrayBuffer());
      expect(digest).toBe(await digestOf(bytesSource(archive)));
      expect(digest).toBe(await digestOf(parse("local://code-review")));
      // The same plugin packs to the same bytes every time.
      const again = await t.as(
        agent.token,
        "GET",
        `/workspaces/${agent.id}/plugins/code-review/download`,
      );
      expect(Buffer.from(await again.arrayBuffer()).equals(Buffer.from(archive))).toBe(true);
    });

    it("admits the admin, refuses another workspace's token (403) and no token (401)", async () => {
      const agent = await createExternal();
      const other = await createExternal();
      expect(
        (await t.admin("GET", `/workspaces/${agent.id}/plugins/prompt-library/download`)).status,
      ).toBe(200);
      const [status, code] = await errorOf(
        await t.as(other.token, "GET", `/workspaces/${agent.id}/plugins/prompt-library/download`),
      );
      expect([status, code]).toEqual([403, "FORBIDDEN"]);
      expect(
        (await t.as(null, "GET", `/workspaces/${agent.id}/plugins/prompt-library/download`)).status,
      ).toBe(401);
      // A workspace token still cannot use the admin plugin routes.
      expect((await t.as(agent.token, "GET", `/workspaces/${agent.id}/plugins`)).status).toBe(403);
    });

    it("refuses a source that holds another plugin (400 PLUGIN_NAME_MISMATCH)", async () => {
      const agent = await createExternal();
      const byName = await errorOf(
        await t.as(
          agent.token,
          "GET",
          `/workspaces/${agent.id}/plugins/code-review/download?source=local://prompt-library`,
        ),
      );
      expect(byName.slice(0, 2)).toEqual([400, "PLUGIN_NAME_MISMATCH"]);
      expect(github.requests).toEqual([]);
      serveCodeReviewV2();
      const byManifest = await errorOf(
        await t.as(
          agent.token,
          "GET",
          `/workspaces/${agent.id}/plugins/incident-triage/download?source=${encodeURIComponent("github://acme/code-review#v1.3.0")}`,
        ),
      );
      expect(byManifest.slice(0, 2)).toEqual([400, "PLUGIN_NAME_MISMATCH"]);
      const ok = await t.as(
        agent.token,
        "GET",
        `/workspaces/${agent.id}/plugins/code-review/download?source=${encodeURIComponent("github://acme/code-review#v1.3.0")}`,
      );
      expect(ok.status).toBe(200);
      expect(ok.headers.get("x-plugin-source")).toBe("github://acme/code-review#v1.3.0");
      expect(ok.headers.get("content-disposition")).toContain("code-review-1.3.0.tar.gz");
    });

    it("applies the allowlist and answers 404 for a plugin the registry lacks", async () => {
      const agent = await createExternal();
      await t.admin("PUT", "/plugins/allowlist", { names: ["prompt-library"] });
      const denied = await errorOf(
        await t.as(agent.token, "GET", `/workspaces/${agent.id}/plugins/code-review/download`),
      );
      expect(denied.slice(0, 2)).toEqual([403, "PLUGIN_NOT_ALLOWED"]);
      await t.admin("PUT", "/plugins/allowlist", { names: [] });
      const missing = await errorOf(
        await t.as(agent.token, "GET", `/workspaces/${agent.id}/plugins/no-such-plugin/download`),
      );
      expect(missing.slice(0, 2)).toEqual([404, "PLUGIN_NOT_FOUND"]);
    });

    it("redirects a download over DOWNLOAD_INLINE_MAX_BYTES to a presigned S3 URL", async () => {
      const app = createApp({
        ...t.deps,
        config: { ...t.deps.config, downloadInlineMaxBytes: 512 },
      });
      const agent = await createExternal();
      const res = await app.request(`/workspaces/${agent.id}/plugins/code-review/download`, {
        headers: { authorization: `Bearer ${agent.token}` },
      });
      expect(res.status).toBe(302);
      const location = res.headers.get("location") ?? "";
      expect(location).toContain(`/${t.deps.config.stagingBucket}/plugins/code-review/`);
      expect(location).toContain("X-Amz-Signature=");
      expect(res.headers.get("x-plugin-name")).toBe("code-review");
      const digest = res.headers.get("x-plugin-digest");
      const fetched = await fetch(location);
      expect(fetched.status).toBe(200);
      const archive = new Uint8Array(await fetched.arrayBuffer());
      expect(archive.byteLength).toBeGreaterThan(512);
      expect(await digestOf(bytesSource(archive))).toBe(digest);
    });
  });

  it("the instance's skills directory can hold a hand-made skill that a plugin may not replace", async () => {
    const ws = await createRunning();
    await mkdir(join(ws.dir, "configs/skills/review"), { recursive: true });
    await writeFile(join(ws.dir, "configs/skills/review/SKILL.md"), "my own review skill");
    const [status, code, error] = await errorOf(await install(ws.id, { source: "code-review" }));
    expect([status, code]).toEqual([502, "COMMAND_FAILED"]);
    expect(error.message).toMatch(/does not belong to plugin code-review/);
    expect(await readFile(join(ws.dir, "configs/skills/review/SKILL.md"), "utf8")).toBe(
      "my own review skill",
    );
    expect(await listTree(join(ws.dir, "configs/plugins"))).toEqual([]);
  });
});
