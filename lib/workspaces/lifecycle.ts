import { type PowerOutcome, startInstance, stopInstance } from "../compute/power.js";
import type { WorkspaceStatus } from "../db/schema.js";
import type { Deps } from "../deps.js";
import { reapplyPlugins } from "../plugins/records.js";
import { launchWorkspace } from "./launch.js";
import type { Actor, WorkspaceRow } from "./model.js";
import { getWorkspace } from "./queries.js";
import { instanceToken, replaceTokens } from "./tokens.js";
import { transition } from "./transition.js";

/**
 * Stop and start: an intentional stop is never confused with a crash. `stopping` and `starting`
 * record what was asked; only EC2 confirms `stopped` (the sweep's power pass, through the running
 * check) and `online` (readiness: EC2 running and SSM Online). A call EC2 could not take leaves
 * the intent in place for the sweep to re-drive; nothing here ever writes a status EC2 did not
 * confirm.
 */

/** Statuses a stop may start from: the instance runs, or was thought to. */
const STOPPABLE: readonly WorkspaceStatus[] = ["online", "degraded", "offline", "starting"];
/** Statuses a start may start from. */
const STARTABLE: readonly WorkspaceStatus[] = ["stopped", "offline"];

export type StopReason = "user" | "idle";

export type StopResult =
  /** The stop is under way (EC2 took it, or the sweep re-drives it). */
  | { kind: "stopping"; row: WorkspaceRow; pending?: string }
  /** Already stopped, or already being stopped: nothing changed. */
  | { kind: "already"; row: WorkspaceRow }
  | { kind: "cannot-hibernate"; row: WorkspaceRow }
  | { kind: "removed"; row: WorkspaceRow }
  /** Nothing to stop yet (provisioning, awaiting its agent, failed) or a racing writer won. */
  | { kind: "conflict"; row: WorkspaceRow };

/**
 * `POST /workspaces/:id/stop` and the idle pass: `stopping` (with why), then StopInstances —
 * with `Hibernate` when asked for and the instance was launched able to. The caller has refused
 * external workspaces.
 */
export async function stopWorkspace(
  deps: Deps,
  row: WorkspaceRow,
  opts: { hibernate: boolean; reason: StopReason; actor: Actor },
): Promise<StopResult> {
  if (row.status === "removing" || row.status === "removed") return { kind: "removed", row };
  if (row.status === "stopped" || row.status === "stopping") return { kind: "already", row };
  if (opts.hibernate && !row.hibernation) return { kind: "cannot-hibernate", row };
  if (!STOPPABLE.includes(row.status) || row.instanceId === null) return { kind: "conflict", row };
  const [changed] = await transition(deps.db, {
    ids: [row.id],
    from: STOPPABLE,
    to: "stopping",
    instanceId: row.instanceId,
    reason: opts.reason === "idle" ? "idle: stop requested by the sweep" : "stop requested",
    actor: opts.actor,
    // While stopping, `hibernated` says what was asked for; once stopped, what EC2 did.
    set: { stoppedReason: opts.reason, hibernated: opts.hibernate, lastError: null },
  });
  if (!changed) return settledStop(deps, row);
  const outcome = await stopInstance(deps, row.instanceId, row.launchedAt, {
    hibernate: opts.hibernate,
  });
  return afterStop(deps, changed.row, outcome, opts.actor);
}

async function settledStop(deps: Deps, row: WorkspaceRow): Promise<StopResult> {
  const fresh = (await getWorkspace(deps.db, row.id)) ?? row;
  if (fresh.status === "removing" || fresh.status === "removed") {
    return { kind: "removed", row: fresh };
  }
  if (fresh.status === "stopped" || fresh.status === "stopping") {
    return { kind: "already", row: fresh };
  }
  return { kind: "conflict", row: fresh };
}

/** What a stop call's outcome means for a `stopping` row; shared with the sweep's re-drive. */
export async function afterStop(
  deps: Deps,
  row: WorkspaceRow,
  outcome: PowerOutcome,
  actor: Actor,
): Promise<StopResult> {
  switch (outcome.kind) {
    case "accepted":
      return { kind: "stopping", row };
    case "transient":
      return { kind: "stopping", row, pending: `${outcome.error.code}: ${outcome.error.message}` };
    case "gone": {
      // Nothing left to stop: the workspace is stopped, and a start relaunches it.
      const [changed] = await transition(deps.db, {
        ids: [row.id],
        from: ["stopping"],
        to: "stopped",
        instanceId: row.instanceId,
        reason: "instance gone; a start launches a new one",
        actor,
        set: {
          instanceId: null,
          launchedAt: null,
          lastError: `instance ${row.instanceId} no longer exists`,
        },
      });
      return changed ? { kind: "stopping", row: changed.row } : settledStop(deps, row);
    }
    case "refused": {
      // EC2 refused the stop itself: the instance runs on, so the workspace is what it was.
      const [changed] = await transition(deps.db, {
        ids: [row.id],
        from: ["stopping"],
        to: "online",
        instanceId: row.instanceId,
        reason: `stop refused by EC2 (${outcome.error.code})`,
        actor,
        set: { stoppedReason: null, lastError: `stop refused: ${outcome.error.message}` },
      });
      return { kind: "conflict", row: changed?.row ?? row };
    }
    default: {
      const unreachable: never = outcome;
      throw new Error(`unhandled power outcome ${JSON.stringify(unreachable)}`);
    }
  }
}

export type StartResult =
  /** The start is under way: EC2 took it (readiness brings it online), or the sweep re-drives it. */
  | { kind: "starting"; row: WorkspaceRow; pending?: string }
  /** The instance was gone: a new one is launching under a new generation. */
  | { kind: "relaunching"; row: WorkspaceRow }
  | { kind: "already"; row: WorkspaceRow }
  | { kind: "removed"; row: WorkspaceRow }
  /** Still stopping (EC2 cannot start it before it has stopped), or not a stopped workspace. */
  | { kind: "conflict"; row: WorkspaceRow };

/**
 * `POST /workspaces/:id/start` (and wake-on-demand): `starting`, then StartInstances; readiness
 * brings it `online` once EC2 runs it and its SSM agent is Online. An instance that no longer
 * exists is replaced: a new generation is launched, keeping the workspace's id, env and plugins
 * (re-applied by the sweep once it is online).
 */
export async function startWorkspace(
  deps: Deps,
  row: WorkspaceRow,
  actor: Actor,
): Promise<StartResult> {
  if (row.status === "removing" || row.status === "removed") return { kind: "removed", row };
  if (["online", "degraded", "starting", "provisioning"].includes(row.status)) {
    return { kind: "already", row };
  }
  if (!STARTABLE.includes(row.status)) return { kind: "conflict", row };
  if (row.instanceId === null) return relaunch(deps, row, actor, "no instance to start");
  const [changed] = await transition(deps.db, {
    ids: [row.id],
    from: STARTABLE,
    to: "starting",
    instanceId: row.instanceId,
    reason: "start requested",
    actor,
    set: { lastError: null },
  });
  if (!changed) return settledStart(deps, row);
  const outcome = await startInstance(deps, row.instanceId, row.launchedAt);
  return afterStart(deps, changed.row, outcome, actor);
}

async function settledStart(deps: Deps, row: WorkspaceRow): Promise<StartResult> {
  const fresh = (await getWorkspace(deps.db, row.id)) ?? row;
  if (fresh.status === "removing" || fresh.status === "removed") {
    return { kind: "removed", row: fresh };
  }
  if (["online", "degraded", "starting", "provisioning"].includes(fresh.status)) {
    return { kind: "already", row: fresh };
  }
  return { kind: "conflict", row: fresh };
}

/** What a start call's outcome means for a `starting` row; shared with the sweep's re-drive. */
export async function afterStart(
  deps: Deps,
  row: WorkspaceRow,
  outcome: PowerOutcome,
  actor: Actor,
): Promise<StartResult> {
  switch (outcome.kind) {
    case "accepted":
      return { kind: "starting", row };
    case "transient":
      return { kind: "starting", row, pending: `${outcome.error.code}: ${outcome.error.message}` };
    case "gone":
      return relaunch(deps, row, actor, `instance ${row.instanceId} no longer exists`);
    case "refused": {
      const [changed] = await transition(deps.db, {
        ids: [row.id],
        from: ["starting"],
        to: "stopped",
        instanceId: row.instanceId,
        reason: `start refused by EC2 (${outcome.error.code})`,
        actor,
        set: { lastError: `start refused: ${outcome.error.message}` },
      });
      return { kind: "conflict", row: changed?.row ?? row };
    }
    default: {
      const unreachable: never = outcome;
      throw new Error(`unhandled power outcome ${JSON.stringify(unreachable)}`);
    }
  }
}

/**
 * Replaces a stopped workspace's vanished instance: a new generation (a new ClientToken and
 * instance token), its plugins to be re-applied, and a launch — as a restart does, without a
 * termination (there is nothing left to terminate).
 */
async function relaunch(
  deps: Deps,
  row: WorkspaceRow,
  actor: Actor,
  why: string,
): Promise<StartResult> {
  const [changed] = await transition(deps.db, {
    ids: [row.id],
    from: ["stopped", "starting", "offline"],
    to: "provisioning",
    instanceId: row.instanceId,
    reason: `${why}; relaunching as generation ${row.generation + 1}`,
    actor,
    set: {
      bumpGeneration: true,
      instanceId: null,
      launchedAt: null,
      lastError: null,
      stoppedReason: null,
      hibernated: false,
    },
  });
  if (!changed) return settledStart(deps, row);
  const next = changed.row;
  await reapplyPlugins(deps.db, next.id);
  const stored = await replaceTokens(
    deps.db,
    next.id,
    instanceToken(deps.config.adminToken ?? "", next.id, next.generation),
    next.generation,
  );
  if (!stored) return { kind: "removed", row: (await getWorkspace(deps.db, next.id)) ?? next };
  const launched = await launchWorkspace(deps, next, actor);
  return { kind: "relaunching", row: launched.row };
}
