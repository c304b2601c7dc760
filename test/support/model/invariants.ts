import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { asc, sql } from "drizzle-orm";
import { parse } from "yaml";
import {
  type WorkspacePluginRow,
  type WorkspaceRow,
  workspaceEvents,
  workspacePlugins,
  workspaces,
} from "../../../lib/db/schema.js";
import { instanceToken } from "../../../lib/workspaces/tokens.js";
import { rowsOf } from "../../../lib/workspaces/transition.js";
import type { InstanceView } from "../../integration/compute/cloud.js";
import { ADMIN_TOKEN } from "../context.js";
import { type Model, ModelViolation, type System } from "./model.js";
import { probePath } from "./ops.js";

/**
 * The invariants, checked after every step (nothing in flight) and at the end (faults off, the
 * sweep run to a fixpoint). Numbers follow the list; 7 and 8 are the model's own:
 *
 * 1. no removed or removing workspace has a token that authenticates — every token the model
 *    ever held, and every instance's derived token up to the next generation, is tried on an
 *    authenticated route; and none of their token rows is live;
 * 2. no instance-backed workspace is `online` without its instance id;
 * 3. (end) no running instance of this deployment without a live owner: a workspace, not
 *    removed, that records it or whose current ClientToken `<id>:<generation>` launched it;
 * 4. no workspace `offline` or `failed` while its current instance (recorded, or launched under
 *    its current ClientToken) runs;
 * 5. every event chain is consistent: ordered by `seq`, the first from nothing, each `from` the
 *    previous `to`, the last `to` the status;
 * 6. (end) every plugin record equals the instance's files (see {@link checkPluginFiles});
 * 7. no false death: an instance-backed workspace is `offline` or `failed` only when the model
 *    crashed its recorded instance, or `failed` with none after its provision timeout;
 * 8. a workspace is `removing`/`removed` only once a DELETE was sent, and always once one
 *    answered;
 * 9. ownership by ClientToken: no instance a workspace is on now (recorded, or launched under
 *    its current ClientToken) is shutting down or terminated while the workspace is not
 *    removing — a restart, a provision timeout and a spent token move the generation on first.
 *
 * At the end besides: nothing left half-done — no workspace `removing`, no instance-backed one
 * `provisioning`, no plugin record `installing` or `uninstalling`.
 */

interface Truth {
  rows: WorkspaceRow[];
  byId: Map<string, WorkspaceRow>;
  instances: InstanceView[];
}

async function readTruth(sys: System): Promise<Truth> {
  const rows = await sys.observer.db.select().from(workspaces);
  const instances = (await sys.run.cloud.instances()).filter(
    (i) => i.tags["wcp:deployment"] === sys.run.deploymentId,
  );
  return { rows, byId: new Map(rows.map((r) => [r.id, r])), instances };
}

const running = (i: InstanceView | undefined) => i?.state === "pending" || i?.state === "running";
const gone = (status: string) => status === "removing" || status === "removed";

/** Runs `checks`, counting each, and throws one violation naming every broken invariant. */
async function report(
  model: Model,
  where: string,
  checks: [string, () => Promise<string[]> | string[]][],
): Promise<void> {
  const broken: string[] = [];
  for (const [name, check] of checks) {
    model.figures.checks++;
    for (const line of await check()) broken.push(`invariant ${name}: ${line}`);
  }
  if (broken.length === 0) return;
  throw new ModelViolation(
    [
      `${broken.length} violation(s) ${where}:`,
      ...broken.slice(0, 20).map((l) => `  ${l}`),
      "trace (newest last):",
      ...model.trace.slice(-60).map((l) => `  ${l}`),
    ].join("\n"),
  );
}

/** The invariants that hold at every quiet moment. */
export async function checkStep(model: Model, sys: System, where: string): Promise<void> {
  const truth = await readTruth(sys);
  await report(model, where, stepChecks(model, sys, truth));
}

function stepChecks(
  model: Model,
  sys: System,
  truth: Truth,
): [string, () => Promise<string[]> | string[]][] {
  return [
    ["1 (dead tokens)", () => deadTokens(model, sys, truth)],
    ["2 (online has its instance)", () => onlineWithoutInstance(truth)],
    ["4 (offline/failed is not running)", () => deadButRunning(truth)],
    ["5 (event chains)", () => eventChains(sys, truth)],
    ["7 (no false death)", () => falseDeaths(model, sys, truth)],
    ["8 (removal follows DELETE)", () => removalFollowsDelete(model, truth)],
    ["9 (a live workspace's instance is not terminated)", () => killedWhileOwned(truth)],
  ];
}

async function deadTokens(model: Model, sys: System, truth: Truth): Promise<string[]> {
  const out: string[] = [];
  const probe = sys.run.apis[0];
  if (!probe) return out;
  for (const ws of model.workspaces) {
    const row = truth.byId.get(ws.id);
    if (!ws.deleted && !(row && gone(row.status))) continue;
    const tokens = new Set(ws.tokens);
    if (!ws.external) {
      for (let g = 1; g <= (row?.generation ?? 1) + 1; g++) {
        tokens.add(instanceToken(ADMIN_TOKEN, ws.id, g).token);
      }
    }
    for (const token of tokens) {
      model.figures.probes++;
      const res = await probe("GET", probePath(ws.id), { token });
      await res.body?.cancel();
      if (res.status !== 401) {
        out.push(`ws${ws.n} is ${row?.status}; token ${token.slice(0, 8)}… answered ${res.status}`);
      }
    }
  }
  const live = await sys.observer.db.execute(sql`
    select w.id, w.status, count(*)::int as n from workspace_tokens t
    join workspaces w on w.id = t.workspace_id
    where w.status in ('removing', 'removed') and t.revoked_at is null
    group by w.id, w.status`);
  for (const r of rowsOf(live)) {
    out.push(`${String(r.id)} is ${String(r.status)} with ${String(r.n)} live token row(s)`);
  }
  return out;
}

function onlineWithoutInstance(truth: Truth): string[] {
  return truth.rows
    .filter((r) => r.status === "online" && r.runtime !== "external" && r.instanceId === null)
    .map((r) => `${r.id} is online without an instance`);
}

/** The instance a workspace is on now: the one it records, else one of its current token. */
function currentInstances(row: WorkspaceRow, truth: Truth): InstanceView[] {
  const token = `${row.id}:${row.generation}`;
  return truth.instances.filter((i) => i.id === row.instanceId || i.clientToken === token);
}

function deadButRunning(truth: Truth): string[] {
  const out: string[] = [];
  for (const row of truth.rows) {
    if (row.status !== "offline" && row.status !== "failed") continue;
    for (const inst of currentInstances(row, truth)) {
      if (running(inst)) out.push(`${row.id} is ${row.status} while ${inst.id} is ${inst.state}`);
    }
  }
  return out;
}

function killedWhileOwned(truth: Truth): string[] {
  const out: string[] = [];
  for (const row of truth.rows) {
    if (gone(row.status)) continue;
    for (const inst of currentInstances(row, truth)) {
      if (inst.state === "shutting-down" || inst.state === "terminated") {
        out.push(
          `${row.id} is ${row.status} at generation ${row.generation}; ${inst.id} (${inst.clientToken}) is ${inst.state}`,
        );
      }
    }
  }
  return out;
}

async function eventChains(sys: System, truth: Truth): Promise<string[]> {
  const events = await sys.observer.db
    .select()
    .from(workspaceEvents)
    .orderBy(asc(workspaceEvents.workspaceId), asc(workspaceEvents.seq));
  const out: string[] = [];
  const last = new Map<string, string>();
  for (const e of events) {
    // Plugin and command outcomes are in the log too; the chain is of status changes.
    if (e.to === null) continue;
    const prev = last.get(e.workspaceId) ?? null;
    if (e.from !== prev) {
      out.push(`${e.workspaceId}: event ${e.seq} ${e.from}→${e.to} follows ${prev ?? "nothing"}`);
    }
    last.set(e.workspaceId, e.to);
  }
  for (const row of truth.rows) {
    const end = last.get(row.id);
    if (end !== row.status) out.push(`${row.id} is ${row.status}; its log ends in ${end}`);
  }
  return out;
}

async function falseDeaths(model: Model, sys: System, truth: Truth): Promise<string[]> {
  const out: string[] = [];
  for (const row of truth.rows) {
    if (row.runtime === "external") continue;
    if (row.status !== "offline" && row.status !== "failed") continue;
    if (row.instanceId !== null) {
      if (!model.crashed.has(row.instanceId)) {
        const inst = truth.instances.find((i) => i.id === row.instanceId);
        out.push(
          `${row.id} is ${row.status}; its instance ${row.instanceId} (${inst?.state}) was never crashed`,
        );
      }
      continue;
    }
    const [lastEvent] = await sys.observer.db
      .select({ to: workspaceEvents.to, reason: workspaceEvents.reason })
      .from(workspaceEvents)
      .where(sql`${workspaceEvents.workspaceId} = ${row.id}`)
      .orderBy(sql`${workspaceEvents.seq} desc`)
      .limit(1);
    if (row.status !== "failed" || !/^not ready within/.test(lastEvent?.reason ?? "")) {
      out.push(`${row.id} is ${row.status} with no instance: "${lastEvent?.reason}"`);
    }
  }
  return out;
}

function removalFollowsDelete(model: Model, truth: Truth): string[] {
  const out: string[] = [];
  for (const ws of model.workspaces) {
    const row = truth.byId.get(ws.id);
    if (!row) out.push(`ws${ws.n} ${ws.id} has no row`);
    else if (gone(row.status) && !ws.deleting)
      out.push(`ws${ws.n} is ${row.status}, never deleted`);
    else if (!gone(row.status) && ws.deleted)
      out.push(`ws${ws.n} is ${row.status} after its DELETE`);
  }
  return out;
}

/** The invariants of the end state; `checkStep`'s all hold then too. */
export async function checkEnd(model: Model, sys: System): Promise<void> {
  const truth = await readTruth(sys);
  await report(model, "at the end (faults off, sweep at its fixpoint)", [
    ...stepChecks(model, sys, truth),
    ["3 (every running instance has a live owner)", () => unowned(truth)],
    ["6 (plugin records equal the files)", () => checkPluginFiles(sys, truth)],
    ["end (nothing half-done)", () => halfDone(sys, truth)],
  ]);
}

function unowned(truth: Truth): string[] {
  const out: string[] = [];
  for (const inst of truth.instances) {
    if (!running(inst)) continue;
    const owner = truth.byId.get(inst.tags["wcp:workspace-id"] ?? "");
    const owned =
      owner !== undefined &&
      owner.status !== "removed" &&
      (owner.instanceId === inst.id || inst.clientToken === `${owner.id}:${owner.generation}`);
    if (!owned) {
      out.push(
        `${inst.id} (${inst.clientToken}) is ${inst.state}; its workspace is ${owner?.status} at generation ${owner?.generation} on ${owner?.instanceId}`,
      );
    }
  }
  return out;
}

async function halfDone(sys: System, truth: Truth): Promise<string[]> {
  const out: string[] = [];
  for (const row of truth.rows) {
    if (row.status === "removing") out.push(`${row.id} is still removing`);
    if (row.status === "provisioning" && row.runtime !== "external") {
      out.push(`${row.id} is still provisioning (instance ${row.instanceId}): ${row.lastError}`);
    }
  }
  const busy = await sys.observer.db
    .select()
    .from(workspacePlugins)
    .where(sql`${workspacePlugins.state} in ('installing', 'uninstalling')`);
  for (const p of busy) out.push(`plugin ${p.name} of ${p.workspaceId} is still ${p.state}`);
  return out;
}

interface InstanceFiles {
  /** Plugin directory → the version its plugin.yaml says. */
  plugins: Map<string, string | null>;
  /** Skill directory → the plugin its marker names. */
  skills: Map<string, string | null>;
}

async function entries(dir: string): Promise<string[]> {
  try {
    // Work directories (`.staging-…`, `.backup-…`, `.removing-…`) are dot-names by design.
    return (await readdir(dir)).filter((n) => !n.startsWith("."));
  } catch {
    return [];
  }
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return null;
  }
}

async function filesOf(dir: string): Promise<InstanceFiles> {
  const plugins = new Map<string, string | null>();
  for (const name of await entries(join(dir, "configs/plugins"))) {
    const manifest = await readText(join(dir, "configs/plugins", name, "plugin.yaml"));
    const version = manifest === null ? null : (parse(manifest) as { version?: unknown }).version;
    plugins.set(name, version === undefined || version === null ? null : String(version));
  }
  const skills = new Map<string, string | null>();
  for (const name of await entries(join(dir, "configs/skills"))) {
    const marker = await readText(join(dir, "configs/skills", name, ".wcp-plugin"));
    skills.set(name, marker === null ? null : marker.trim());
  }
  return { plugins, skills };
}

/**
 * Invariant 6, what the records promise about the files of the workspace's current instance
 * (`OperationEnd` in lib/plugins/records.ts):
 * - `installed` → `configs/plugins/<name>/` is there, its plugin.yaml at the recorded version,
 *   and each recorded skill is there, marked as the plugin's;
 * - no record → no plugin directory and no skill marked as that plugin's;
 * - `failed` → no promise about the files: the outcome on the instance is unknown (a program
 *   killed mid-way, an uninstall cut short), or an install failed and kept whatever was there.
 * A workspace without an instance has no `installed` record. Removed workspaces are left out:
 * their instances are terminated and their files gone.
 */
async function checkPluginFiles(sys: System, truth: Truth): Promise<string[]> {
  const out: string[] = [];
  const records = await sys.observer.db.select().from(workspacePlugins);
  const byWorkspace = new Map<string, WorkspacePluginRow[]>();
  for (const r of records) {
    byWorkspace.set(r.workspaceId, [...(byWorkspace.get(r.workspaceId) ?? []), r]);
  }
  for (const row of truth.rows) {
    if (row.runtime === "external" || gone(row.status)) continue;
    const mine = byWorkspace.get(row.id) ?? [];
    const inst = truth.instances.find((i) => i.id === row.instanceId);
    if (!inst) {
      for (const r of mine.filter((r) => r.state === "installed")) {
        out.push(`${row.id} has no instance, yet ${r.name} ${r.version} is recorded installed`);
      }
      continue;
    }
    const files = await filesOf(inst.dir);
    const named = new Map(mine.map((r) => [r.name, r]));
    for (const r of mine) {
      if (r.state !== "installed") continue;
      const onDisk = files.plugins.get(r.name);
      if (onDisk === undefined) {
        out.push(`${row.id}: ${r.name} ${r.version} recorded installed, absent on ${inst.id}`);
      } else if (onDisk !== r.version) {
        out.push(
          `${row.id}: ${r.name} recorded installed at ${r.version}, ${onDisk} on ${inst.id}`,
        );
      }
      for (const skill of r.skills) {
        if (files.skills.get(skill) !== r.name) {
          out.push(`${row.id}: skill ${skill} of installed ${r.name} missing on ${inst.id}`);
        }
      }
    }
    for (const [name, version] of files.plugins) {
      if (!named.has(name)) out.push(`${row.id}: ${name} ${version} on ${inst.id} has no record`);
    }
    for (const [skill, owner] of files.skills) {
      if (owner !== null && !named.has(owner)) {
        out.push(`${row.id}: skill ${skill} of ${owner} on ${inst.id} has no record`);
      }
    }
  }
  return out;
}

/**
 * What a sweep round may change, timestamps aside: statuses, instances and generations, plugin
 * records and their operations, instance states. Equal snapshots around a quiet round mean the
 * fixpoint is reached.
 */
export async function snapshot(sys: System): Promise<string> {
  const rows = await sys.observer.db
    .select({
      id: workspaces.id,
      status: workspaces.status,
      instanceId: workspaces.instanceId,
      generation: workspaces.generation,
    })
    .from(workspaces)
    .orderBy(asc(workspaces.id));
  const plugins = await sys.observer.db
    .select({
      workspaceId: workspacePlugins.workspaceId,
      name: workspacePlugins.name,
      state: workspacePlugins.state,
      version: workspacePlugins.version,
      opId: workspacePlugins.opId,
      commandId: workspacePlugins.commandId,
    })
    .from(workspacePlugins)
    .orderBy(asc(workspacePlugins.workspaceId), asc(workspacePlugins.name));
  const instances = (await sys.run.cloud.instances())
    .map((i) => [i.id, i.state])
    .sort(([a], [b]) => String(a).localeCompare(String(b)));
  return JSON.stringify({ rows, plugins, instances });
}
