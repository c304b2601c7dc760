import { z } from "zod";
import { type Catalogue, catalogueEntries } from "./catalogue.js";
import type { StateChangeEvents } from "./events.js";
import type { FaultTable } from "./faults.js";
import { faultSpec } from "./faults.js";
import type { Fleet } from "./fleet.js";
import type { ResolvedOptions } from "./options.js";
import { stateCodes } from "./store.js";

/** Calls per `service:Action`, faulted ones included, so SDK retries can be counted. */
export class CallStats {
  #calls = new Map<string, number>();

  count(service: string, action: string): void {
    const k = `${service}:${action}`;
    this.#calls.set(k, (this.#calls.get(k) ?? 0) + 1);
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.#calls);
  }

  reset(): void {
    this.#calls.clear();
  }
}

export interface ControlDeps {
  fleet: Fleet;
  faults: FaultTable;
  stats: CallStats;
  catalogue: Catalogue;
  opts: ResolvedOptions;
  events: StateChangeEvents;
}

/** `PUT /_localcloud/settings`: the options that may change while the cloud runs. */
const settingsSpec = z
  .object({
    // A local bound: AWS does not say how long its lag lasts, only "a couple of seconds … up to a
    // few minutes" of backoff (ec2/latest/devguide/eventual-consistency.html).
    describeLagMs: z.number().int().min(0).max(600_000),
    hibernationFallback: z.boolean(),
  })
  .partial()
  .strict();

/** `POST /_localcloud/eventTargets`: a loopback URL that gets every state-change event. */
const eventTargetSpec = z.object({ url: z.string().max(2048) }).strict();

/** `POST /_localcloud/instances/:id/agent`: lose the instance's SSM agent, or bring it back. */
const agentSpec = z.object({ online: z.boolean() }).strict();

const settingsOf = (opts: ResolvedOptions) => ({
  describeLagMs: opts.describeLagMs,
  hibernationFallback: opts.hibernationFallback,
});

export interface ControlResponse {
  status: number;
  json: unknown;
}

type Route = {
  method: string;
  /** Matched against the path after `/_localcloud`; groups become `params`. */
  pattern: RegExp;
  handler: (deps: ControlDeps, params: string[], body: string) => ControlResponse;
};

const routes: Route[] = [
  { method: "GET", pattern: /^\/health$/, handler: () => ok({ ok: true }) },
  {
    method: "GET",
    pattern: /^\/instances$/,
    handler: ({ fleet }) => ok({ instances: fleet.all().map((i) => describe(fleet, i.id)) }),
  },
  {
    method: "GET",
    pattern: /^\/instances\/([^/]+)$/,
    handler: ({ fleet }, [id = ""]) => {
      const view = describe(fleet, id);
      return view ? ok(view) : notFound(`instance ${id}`);
    },
  },
  {
    method: "POST",
    pattern: /^\/instances\/([^/]+)\/crash$/,
    handler: ({ fleet }, [id = ""]) => {
      const inst = fleet.get(id);
      if (!inst) return notFound(`instance ${id}`);
      if (inst.state === "shutting-down" || inst.state === "terminated") {
        return { status: 409, json: { error: `instance ${id} is ${inst.state}` } };
      }
      fleet.crash(id);
      return ok(describe(fleet, id));
    },
  },
  {
    method: "POST",
    pattern: /^\/instances\/([^/]+)\/agent$/,
    handler: ({ fleet }, [id = ""], body) => {
      const parsed = parseBody(agentSpec, body, "invalid agent state");
      if (!parsed.ok) return parsed.response;
      const inst = fleet.get(id);
      if (!inst) return notFound(`instance ${id}`);
      if (inst.state !== "running") {
        return { status: 409, json: { error: `instance ${id} is ${inst.state}` } };
      }
      fleet.setAgentLost(id, !parsed.value.online);
      return ok(describe(fleet, id));
    },
  },
  {
    method: "GET",
    pattern: /^\/eventTargets$/,
    handler: ({ events }) => ok({ targets: events.urls() }),
  },
  {
    method: "POST",
    pattern: /^\/eventTargets$/,
    handler: ({ events }, _params, body) => {
      const parsed = parseBody(eventTargetSpec, body, "invalid event target");
      if (!parsed.ok) return parsed.response;
      const added = events.addUrl(parsed.value.url);
      if ("error" in added) return { status: 400, json: { error: added.error } };
      return { status: 201, json: added };
    },
  },
  {
    method: "DELETE",
    pattern: /^\/eventTargets\/([^/]+)$/,
    handler: ({ events }, [id = ""]) =>
      events.removeUrl(id) ? ok({ cleared: 1 }) : notFound(`event target ${id}`),
  },
  { method: "GET", pattern: /^\/events\/stats$/, handler: ({ events }) => ok(events.stats()) },
  { method: "GET", pattern: /^\/faults$/, handler: ({ faults }) => ok({ faults: faults.list() }) },
  {
    method: "POST",
    pattern: /^\/faults$/,
    handler: ({ faults }, _params, body) => {
      const parsed = parseBody(faultSpec, body, "invalid fault");
      if (!parsed.ok) return parsed.response;
      return { status: 201, json: { id: faults.add(parsed.value).id } };
    },
  },
  { method: "GET", pattern: /^\/settings$/, handler: ({ opts }) => ok(settingsOf(opts)) },
  {
    method: "PUT",
    pattern: /^\/settings$/,
    handler: ({ opts }, _params, body) => {
      const parsed = parseBody(settingsSpec, body, "invalid settings");
      if (!parsed.ok) return parsed.response;
      if (parsed.value.describeLagMs !== undefined) opts.describeLagMs = parsed.value.describeLagMs;
      if (parsed.value.hibernationFallback !== undefined) {
        opts.hibernationFallback = parsed.value.hibernationFallback;
      }
      return ok(settingsOf(opts));
    },
  },
  { method: "GET", pattern: /^\/catalogue$/, handler: ({ catalogue }) => ok(catalogue.list()) },
  {
    method: "POST",
    pattern: /^\/catalogue$/,
    handler: ({ catalogue }, _params, body) => {
      const parsed = parseBody(catalogueEntries, body, "invalid catalogue entries");
      if (!parsed.ok) return parsed.response;
      catalogue.add(parsed.value);
      return ok(catalogue.list());
    },
  },
  {
    method: "DELETE",
    pattern: /^\/faults$/,
    handler: ({ faults }) => ok({ cleared: faults.clear() }),
  },
  {
    method: "DELETE",
    pattern: /^\/faults\/([^/]+)$/,
    handler: ({ faults }, [id = ""]) =>
      faults.remove(id) ? ok({ cleared: 1 }) : notFound(`fault ${id}`),
  },
  { method: "GET", pattern: /^\/stats$/, handler: ({ stats }) => ok({ calls: stats.snapshot() }) },
  {
    method: "POST",
    pattern: /^\/stats\/reset$/,
    handler: ({ stats }) => {
      stats.reset();
      return ok({ calls: {} });
    },
  },
];

/**
 * The control API under `/_localcloud/`, for tests and demos: instance listing, crashes, agent
 * loss, EC2 state-change event targets, fault injection, call statistics, run-time settings and the resource catalogue. It sits
 * outside the AWS APIs, so nothing here is counted.
 */
export function handleControl(
  deps: ControlDeps,
  method: string,
  path: string,
  body: string,
): ControlResponse {
  const sub = path.slice("/_localcloud".length);
  for (const route of routes) {
    if (route.method !== method) continue;
    const m = route.pattern.exec(sub);
    if (m) return route.handler(deps, m.slice(1).map(decodeURIComponent), body);
  }
  return notFound(`route ${method} ${path}`);
}

function parseBody<T>(
  schema: z.ZodType<T>,
  body: string,
  what: string,
): { ok: true; value: T } | { ok: false; response: ControlResponse } {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return { ok: false, response: { status: 400, json: { error: "body must be JSON" } } };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    return {
      ok: false,
      response: { status: 400, json: { error: what, issues: parsed.error.issues } },
    };
  }
  return { ok: true, value: parsed.data };
}

function ok(json: unknown): ControlResponse {
  return { status: 200, json };
}

function notFound(what: string): ControlResponse {
  return { status: 404, json: { error: `${what} not found` } };
}

function describe(fleet: Fleet, id: string): Record<string, unknown> | undefined {
  const inst = fleet.get(id);
  if (!inst) return undefined;
  const reg = fleet.registration(inst);
  return {
    id: inst.id,
    state: inst.state,
    stateCode: stateCodes[inst.state],
    tags: Object.fromEntries(inst.tags.map((t) => [t.key, t.value])),
    launchTime: new Date(inst.launchTime).toISOString(),
    dir: fleet.instanceDir(inst.id),
    clientToken: inst.clientToken ?? null,
    ssmPingStatus: reg?.pingStatus ?? null,
    imageId: inst.imageId,
    instanceType: inst.instanceType,
    privateIp: inst.privateIp,
    // Whether the EC2 API lists it yet (`describeLagMs`); this API always does.
    describable: inst.visibleAt === undefined || Date.now() >= inst.visibleAt,
    stateReason: inst.stateReason?.code ?? null,
    hibernationConfigured: inst.hibernationConfigured === true,
    // While stopping or stopped through StopInstances: whether it hibernated (false after a
    // fallback to a plain stop); null in every other state.
    hibernated: inst.stopMode === undefined ? null : inst.stopMode === "hibernate",
  };
}
