import { randomUUID } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { deadlineIn } from "../../../lib/deadline.js";
import { reconcileInstanceEvent } from "../../../lib/ec2events/reconcile.js";
import { runSweep } from "../../../lib/sweep/run.js";
import { instanceToken } from "../../../lib/workspaces/tokens.js";
import type { FaultSpec } from "../../integration/compute/cloud.js";
import { ADMIN_TOKEN } from "../context.js";
import { type Model, ModelViolation, type ModelWorkspace, type System, tally } from "./model.js";
import type { Caller } from "./world.js";

/**
 * The operations a burst runs side by side: every API verb the issue names, the sweep, crashes
 * and faults through the local cloud's control API, and new plugin versions in the registry.
 * Each checks the answer it gets against what the product promises for it (never a 500, 409
 * WORKSPACE_REMOVED only once a DELETE was sent, …) and records what it learnt in the model.
 */

/** The sample plugins of `plugins/`, served as `local://NAME`. */
export const PLUGINS = ["code-review", "incident-triage", "prompt-library"] as const;
export type PluginName = (typeof PLUGINS)[number];

export type FaultMode = "throttle" | "server" | "drop" | "slow" | "timeout";
export type Service = "ec2" | "ssm" | "s3";

/** The actions each service's faults may hit: what the product sends (and the instance's curl). */
export const FAULT_ACTIONS: Record<Service, readonly string[]> = {
  ec2: ["RunInstances", "DescribeInstances", "TerminateInstances"],
  ssm: ["SendCommand", "DescribeInstanceInformation", "ListCommands", "GetCommandInvocation"],
  s3: ["PutObject", "GetObject"],
};

// Actions a request polls in a loop until its own deadline (an uninstall waits 20 s for its
// command; the instance's curl retries): a fault there that never ends costs the whole deadline
// on every call and teaches nothing more than a few faulted calls do, so it always has `times`.
const POLLED = new Set(["GetCommandInvocation", "GetObject"]);

/** One step of a burst. `ws` picks a workspace the model knows (modulo their number). */
export type Op =
  | { kind: "create"; external: boolean }
  | { kind: "restart"; ws: number }
  | { kind: "delete"; ws: number }
  | { kind: "mint"; ws: number }
  /** `stale`: an older token (the oldest running instance's, the external's first one). */
  | { kind: "register" | "heartbeat"; ws: number; stale: boolean }
  | { kind: "install" | "uninstall"; ws: number; plugin: PluginName }
  /** A new version of the plugin is published, then installed. */
  | { kind: "upgrade"; ws: number; plugin: PluginName }
  | { kind: "crash"; ws: number; pick: number }
  /**
   * An EC2 state-change event for one of the workspace's instances (old ones included), handed
   * to the event function as EventBridge would: any state, so late, stale, duplicated (`twice`)
   * and plainly wrong ones too — the event is a hint; only the running check may act.
   */
  | { kind: "ec2event"; ws: number; pick: number; state: Ec2State; twice: boolean }
  | { kind: "sweep" }
  | { kind: "fault"; service: Service; action: string; mode: FaultMode; times: number | null }
  | { kind: "faults-off" }
  | { kind: "lag"; ms: number }
  | { kind: "publish"; plugin: PluginName };

export const EC2_STATES = [
  "pending",
  "running",
  "stopping",
  "stopped",
  "shutting-down",
  "terminated",
] as const;
export type Ec2State = (typeof EC2_STATES)[number];

export function describeOp(op: Op): string {
  switch (op.kind) {
    case "create":
      return `create(${op.external ? "external" : "instance"})`;
    case "restart":
    case "delete":
    case "mint":
      return `${op.kind}(#${op.ws})`;
    case "register":
    case "heartbeat":
      return `${op.kind}(#${op.ws}${op.stale ? ", stale" : ""})`;
    case "install":
    case "uninstall":
    case "upgrade":
      return `${op.kind}(#${op.ws}, ${op.plugin})`;
    case "crash":
      return `crash(#${op.ws}/${op.pick})`;
    case "ec2event":
      return `ec2event(#${op.ws}, ${op.state}${op.twice ? " ×2" : ""})`;
    case "sweep":
    case "faults-off":
      return op.kind;
    case "fault":
      return `fault(${op.service}:${op.action} ${op.mode}${op.times === null ? "" : ` ×${op.times}`})`;
    case "lag":
      return `lag(${op.ms})`;
    case "publish":
      return `publish(${op.plugin})`;
    default: {
      const unreachable: never = op;
      throw new Error(`unknown op ${JSON.stringify(unreachable)}`);
    }
  }
}

// Errors as the local cloud's services answer them. EC2 throttling is RequestLimitExceeded,
// observed with HTTP 503 (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html); SSM
// throttles with ThrottlingException, a 400 (docs.aws.amazon.com/systems-manager/latest/
// APIReference/CommonErrors.html); S3 asks to slow down with SlowDown, a 503
// (docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html). Server faults are 500s.
const ERRORS: Record<Service, Record<"throttle" | "server", [string, number]>> = {
  ec2: { throttle: ["RequestLimitExceeded", 503], server: ["InternalError", 500] },
  ssm: { throttle: ["ThrottlingException", 400], server: ["InternalServerError", 500] },
  s3: { throttle: ["SlowDown", 503], server: ["InternalError", 500] },
};

/** The control API's fault for an op; `slow` answers in time, `timeout` is an answer lost. */
export function faultSpecOf(op: Extract<Op, { kind: "fault" }>): FaultSpec {
  const times = op.times ?? (POLLED.has(op.action) ? 2 : undefined);
  const base = { service: op.service, action: op.action, ...(times !== undefined && { times }) };
  switch (op.mode) {
    case "throttle":
    case "server": {
      const [error, httpStatus] = ERRORS[op.service][op.mode];
      return { ...base, error, httpStatus };
    }
    case "drop":
      return { ...base, loseAnswer: "drop" };
    case "slow":
      return { ...base, latencyMs: 150 };
    case "timeout":
      // Longer than the clients' 500 ms request timeout: the call runs, its answer is lost.
      return { ...base, latencyMs: 700 };
    default: {
      const unreachable: never = op.mode;
      throw new Error(`unknown fault mode ${String(unreachable)}`);
    }
  }
}

interface Answer {
  status: number;
  code: string | null;
  body: Record<string, unknown>;
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = text === "" ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    body = { text: text.slice(0, 200) };
  }
  const error = body.error as { code?: string } | undefined;
  return { status: res.status, code: error?.code ?? null, body };
}

/**
 * Throws unless the answer is one the product may give this op. `WORKSPACE_REMOVED` is allowed
 * only once a DELETE of the workspace was sent: a live workspace is never called removed.
 */
function allow(
  model: Model,
  what: string,
  a: Answer,
  statuses: readonly number[],
  ws?: ModelWorkspace,
): void {
  tally(model.reached, `${what.replace(/\(.*$/, "")} ${a.status}${a.code ? ` ${a.code}` : ""}`);
  if (!statuses.includes(a.status)) {
    throw new ModelViolation(`${what} answered ${a.status} ${JSON.stringify(a.body)}`);
  }
  if (a.code === "WORKSPACE_REMOVED" && ws && !ws.deleting) {
    throw new ModelViolation(`${what} answered WORKSPACE_REMOVED, but no DELETE was ever sent`);
  }
}

/** `ws` from here on picks among the live workspaces of either kind. */
export const ANY_LIVE = 12;
/** `ws` from here on picks among every workspace, removed ones included. */
export const ANY_WORKSPACE = 16;

// What only an instance can do: for these, small `ws` values pick instance-backed workspaces.
const ON_INSTANCES = new Set<Op["kind"]>([
  "install",
  "uninstall",
  "upgrade",
  "restart",
  "crash",
  "ec2event",
]);

/**
 * The workspace an op acts on, decided when its burst starts: `ws` modulo a group of the known
 * workspaces — the live ones no DELETE was sent for (instance-backed ones first for the ops
 * only an instance can take, below {@link ANY_LIVE}), or all of them from
 * {@link ANY_WORKSPACE} — so most ops act where they can do something and some where they
 * must be refused. An empty group falls back to all.
 */
export function targetOf(model: Model, op: Op): ModelWorkspace | undefined {
  if (!("ws" in op) || model.workspaces.length === 0) return undefined;
  const live = model.workspaces.filter((w) => !w.deleting);
  const instances = live.filter((w) => !w.external);
  let among =
    op.ws >= ANY_WORKSPACE
      ? model.workspaces
      : op.ws >= ANY_LIVE || !ON_INSTANCES.has(op.kind)
        ? live
        : instances;
  if (among.length === 0) among = model.workspaces;
  return among[op.ws % among.length];
}

/** The route a token probe calls: authenticated first, then refused for its invalid name. */
export const probePath = (workspaceId: string) =>
  `/workspaces/${workspaceId}/plugins/NOT-A-NAME/download`;

/**
 * Runs one op through `caller` on `target` (see {@link targetOf}) and returns its trace line.
 * An op on a workspace when the model knows none creates one instead (instance-backed for an
 * even index), so short runs still act.
 */
export async function runOp(
  model: Model,
  sys: System,
  caller: Caller,
  op: Op,
  target: ModelWorkspace | undefined,
): Promise<string> {
  const call: Caller = async (method, path, opts) => {
    model.figures.requests++;
    return caller(method, path, opts);
  };
  const label = describeOp(op);
  if ("ws" in op && target === undefined) {
    return runOp(model, sys, caller, { kind: "create", external: op.ws % 2 === 1 }, undefined);
  }
  const ws = target as ModelWorkspace;
  switch (op.kind) {
    case "create": {
      const a = await answer(
        await call("POST", "/workspaces", {
          body: op.external ? { name: "model-ext", runtime: "external" } : { name: "model" },
        }),
      );
      allow(model, label, a, [201]);
      const w = a.body.workspace as { id: string; status: string };
      const token = a.body.token as string | undefined;
      const expected = op.external ? "awaiting_agent" : "provisioning";
      if (w.status !== expected) {
        throw new ModelViolation(`${label} answered 201 with status ${w.status}, not ${expected}`);
      }
      const created: ModelWorkspace = {
        n: model.workspaces.length,
        id: w.id,
        external: op.external,
        tokens: token ? [token] : [],
        deleted: false,
        deleting: false,
      };
      model.workspaces.push(created);
      if (token) {
        // The probe must tell a live token from a dead one, or invariant 1 proves nothing.
        const probe = await call("GET", probePath(w.id), { token });
        if (probe.status !== 400) {
          throw new ModelViolation(`a fresh external token probed ${probe.status}, not 400`);
        }
      }
      return `${label} → ws${created.n} ${w.id}`;
    }
    case "restart":
    case "delete":
    case "mint": {
      if (op.kind === "delete") ws.deleting = true;
      const [method, path] =
        op.kind === "restart"
          ? ["POST", `/workspaces/${ws.id}/restart`]
          : op.kind === "delete"
            ? ["DELETE", `/workspaces/${ws.id}`]
            : ["POST", `/workspaces/${ws.id}/tokens`];
      const a = await answer(await call(method, path));
      if (op.kind === "restart") {
        allow(model, label, a, ws.external ? [422] : [202, 409], ws);
      } else if (op.kind === "delete") {
        allow(model, label, a, [200, 202], ws);
        const status = (a.body.workspace as { status: string }).status;
        const promised = a.status === 200 ? "removed" : "removing";
        if (status !== promised) {
          throw new ModelViolation(`${label} answered ${a.status} with status ${status}`);
        }
        ws.deleted = true;
      } else {
        allow(model, label, a, [201, 409], ws);
        if (a.status === 201) ws.tokens.push(a.body.token as string);
      }
      return `${label} ws${ws.n} → ${a.status}${a.code ? ` ${a.code}` : ""}`;
    }
    case "register":
    case "heartbeat": {
      const deletedBefore = ws.deleted;
      let token: string | undefined;
      if (ws.external) {
        token = op.stale ? ws.tokens[0] : ws.tokens[ws.tokens.length - 1];
      } else {
        // Only an agent that runs can call: the one on a running instance of the workspace,
        // with the token derived for the generation it was launched with (its tag). A stale
        // agent is the oldest one still running (a replaced instance not terminated yet).
        const generations = (await sys.run.cloud.instances())
          .filter((i) => i.tags["wcp:workspace-id"] === ws.id && i.state === "running")
          .map((i) => Number(i.tags["wcp:generation"]))
          .sort((a, b) => a - b);
        const generation = op.stale ? generations[0] : generations[generations.length - 1];
        if (generation === undefined) return `${label} ws${ws.n}: no agent runs`;
        token = instanceToken(ADMIN_TOKEN, ws.id, generation).token;
      }
      if (token === undefined) return `${label} ws${ws.n}: no token`;
      const a = await answer(await call("POST", `/registry/${op.kind}`, { token }));
      allow(model, label, a, [200, 401], ws);
      if (a.status === 200 && deletedBefore) {
        throw new ModelViolation(`${label}: a token of ws${ws.n} worked after its DELETE answered`);
      }
      return `${label} ws${ws.n} → ${a.status}${a.status === 200 ? ` ${String(a.body.status)}` : ""}`;
    }
    case "upgrade": {
      const published = await runOp(model, sys, caller, { kind: "publish", plugin: op.plugin }, ws);
      const installed = await runOp(model, sys, caller, { ...op, kind: "install" }, ws);
      return `${published}; ${installed}`;
    }
    case "install":
    case "uninstall": {
      const a = await answer(
        op.kind === "install"
          ? await call("POST", `/workspaces/${ws.id}/plugins`, {
              body: { source: `local://${op.plugin}` },
            })
          : await call("DELETE", `/workspaces/${ws.id}/plugins/${op.plugin}`),
      );
      const allowed = ws.external
        ? [409, 422]
        : op.kind === "install"
          ? [200, 202, 409, 502, 503]
          : [200, 202, 404, 409, 502, 503];
      allow(model, label, a, allowed, ws);
      // A send whose answer was lost: the program may run, the sweep must find out.
      if (a.status === 202 && a.body.commandId === null)
        tally(model.reached, `${op.kind} 202 unconfirmed`);
      // A restart or removal landing between the running check and the claim: nothing was sent.
      if (a.status === 409 && a.code === "WORKSPACE_STATE_CONFLICT")
        tally(model.reached, `${op.kind} 409 moved on`);
      if (
        a.status === 409 &&
        a.code !== "PLUGIN_BUSY" &&
        a.code !== "WORKSPACE_REMOVED" &&
        a.code !== "WORKSPACE_STATE_CONFLICT"
      ) {
        throw new ModelViolation(`${label} answered 409 ${a.code}`);
      }
      return `${label} ws${ws.n} → ${a.status}${a.code ? ` ${a.code}` : ""}`;
    }
    case "crash": {
      const mine = (await sys.run.cloud.instances()).filter(
        (i) =>
          i.tags["wcp:workspace-id"] === ws.id && (i.state === "pending" || i.state === "running"),
      );
      const victim = mine[op.pick % Math.max(1, mine.length)];
      if (!victim) return `${label} ws${ws.n}: nothing running`;
      // A terminate racing the crash wins sometimes: the control API answers 409 then.
      const res = await fetch(`${sys.run.cloud.url}/_localcloud/instances/${victim.id}/crash`, {
        method: "POST",
      });
      await res.body?.cancel();
      if (res.status === 409) return `${label} ws${ws.n} → ${victim.id} was terminating`;
      if (res.status !== 200) throw new Error(`crash answered ${res.status}`);
      model.crashed.add(victim.id);
      return `${label} ws${ws.n} → ${victim.id} (${victim.clientToken})`;
    }
    case "ec2event": {
      const mine = (await sys.run.cloud.instances()).filter(
        (i) => i.tags["wcp:workspace-id"] === ws.id,
      );
      const inst = mine[op.pick % Math.max(1, mine.length)];
      if (!inst) return `${label} ws${ws.n}: no instance`;
      const event = {
        version: "0",
        id: randomUUID(),
        "detail-type": "EC2 Instance State-change Notification",
        source: "aws.ec2",
        account: "123456789012",
        time: new Date().toISOString(),
        region: "us-east-1",
        resources: [`arn:aws:ec2:us-east-1:123456789012:instance/${inst.id}`],
        detail: { "instance-id": inst.id, state: op.state },
      };
      const outcomes: string[] = [];
      for (let i = 0; i < (op.twice ? 2 : 1); i++) {
        const o = await reconcileInstanceEvent(sys.run.sweepDeps(0), event, {
          deadline: deadlineIn(20_000),
        });
        if (o.kind === "malformed")
          throw new ModelViolation(`${label}: event refused as malformed`);
        tally(model.reached, `ec2event ${o.kind}`);
        outcomes.push(o.kind === "reconciled" ? `changed ${o.counts.changed}` : o.kind);
      }
      return `${label} ws${ws.n} → ${inst.id} (${inst.state}): ${outcomes.join(", ")}`;
    }
    case "sweep": {
      model.figures.sweeps++;
      const s = await runSweep(sys.run.sweepDeps(0), { budget: { remainingMs: () => 60_000 } });
      const changed = Object.entries(s.passes)
        .filter(([, p]) => p.changed > 0)
        .map(([n, p]) => `${n}+${p.changed}`);
      return `${label} → ${changed.join(" ") || "no change"}`;
    }
    case "fault": {
      await sys.run.cloud.fault(faultSpecOf(op));
      return label;
    }
    case "faults-off":
      await sys.run.cloud.clearFaults();
      return label;
    case "lag": {
      const res = await fetch(`${sys.run.cloud.url}/_localcloud/settings`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ describeLagMs: op.ms }),
      });
      if (res.status !== 200) throw new Error(`settings answered ${res.status}`);
      model.lagMs = op.ms;
      model.lagSeenMs = Math.max(model.lagSeenMs, op.ms);
      return label;
    }
    case "publish": {
      const file = join(sys.run.pluginsDir, op.plugin, "plugin.yaml");
      const text = await readFile(file, "utf8");
      const bumped = text.replace(/^version: "(\d+)\.(\d+)\.(\d+)"$/m, (_, a, b, c) => {
        return `version: "${a}.${b}.${Number(c) + 1}"`;
      });
      // Written beside the registry and renamed into place: a staging that reads the plugin
      // meanwhile sees one version or the other, never a stray file.
      const next = `${sys.run.pluginsDir}.${op.plugin}.${randomUUID()}`;
      await writeFile(next, bumped);
      await rename(next, file);
      return `${label} → ${/^version: "(.*)"$/m.exec(bumped)?.[1]}`;
    }
    default: {
      const unreachable: never = op;
      throw new Error(`unknown op ${JSON.stringify(unreachable)}`);
    }
  }
}
