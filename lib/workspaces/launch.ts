import { eq, sql } from "drizzle-orm";
import { type AwsProblem, describeAwsError } from "../compute/errors.js";
import { findByClientToken, type TokenInstance } from "../compute/instances.js";
import {
  clientTokenFor,
  type LaunchOutcome,
  runInstance,
  terminateInstance,
} from "../compute/launch.js";
import { buildUserData, UserDataTooLargeError } from "../compute/user-data.js";
import { workspaces } from "../db/schema.js";
import type { Deps } from "../deps.js";
import type { Actor, WorkspaceRow } from "./model.js";
import { InstanceTokenKeyError, instanceToken, instanceTokenKey, replaceTokens } from "./tokens.js";
import { rowsOf, transition } from "./transition.js";

export type LaunchResult =
  | { kind: "launched"; row: WorkspaceRow }
  | { kind: "pending"; row: WorkspaceRow; error: AwsProblem }
  | { kind: "failed"; row: WorkspaceRow; error: AwsProblem }
  /** Another writer moved the row on (removed, relaunched, adopted) while we launched. */
  | { kind: "superseded"; row: WorkspaceRow };

/**
 * Launches the instance of a `provisioning` workspace's current generation and records it.
 * Safe to repeat (the API at create/restart, the sweep's launch pass on a lost answer): the
 * ClientToken and user-data depend only on the row, so EC2 hands back the same instance.
 *
 * - launched    → the row names the instance (status stays `provisioning`; readiness brings it
 *                 online);
 * - transient   → the row stays without an instance and records the error; the sweep re-drives
 *                 it (a refused permission too: an operator's fix makes the same call succeed);
 * - token spent → (`IdempotentInstanceTerminated`, `IdempotentParameterMismatch`) an instance
 *                 that this token launched and that still lives is adopted; otherwise the row
 *                 moves to a new generation (a new ClientToken) and launches again, with an event
 *                 saying why;
 * - rejected    → `failed` with `lastError` (a bad AMI, a bad profile: retrying cannot help);
 * - no key      → (`ADMIN_TOKEN` unset: no instance token can be derived) nothing is launched; the
 *                 row stays pending with the reason, as for a transient failure.
 *
 * Every write is conditional on the row still being `provisioning` at the same generation with
 * no instance, so a stale attempt (a restart moved the row on meanwhile) never touches it.
 */
export async function launchWorkspace(
  deps: Deps,
  row: WorkspaceRow,
  actor: Actor,
): Promise<LaunchResult> {
  const outcome = await attemptLaunch(deps, row);
  switch (outcome.kind) {
    case "launched":
      return recordLaunched(deps, row, outcome.instanceId, actor);
    case "token-spent":
      return afterSpentToken(deps, row, outcome.error, actor);
    case "transient": {
      const updated = await recordPending(deps, row, outcome.error);
      return updated
        ? { kind: "pending", row: updated, error: outcome.error }
        : { kind: "superseded", row: await reload(deps, row) };
    }
    case "rejected": {
      const [changed] = await transition(deps.db, {
        ids: [row.id],
        from: ["provisioning"],
        to: "failed",
        instanceId: null,
        where: sql`w.generation = ${row.generation}`,
        reason: `launch rejected: ${outcome.error.code}`,
        actor,
        set: { lastError: `${outcome.error.code}: ${outcome.error.message}` },
      });
      if (!changed) return { kind: "superseded", row: await reload(deps, row) };
      return { kind: "failed", row: changed.row, error: outcome.error };
    }
    default: {
      const unreachable: never = outcome;
      throw new Error(`unhandled launch outcome ${JSON.stringify(unreachable)}`);
    }
  }
}

async function attemptLaunch(deps: Deps, row: WorkspaceRow): Promise<LaunchOutcome> {
  const image = deps.config.runtimeImages[row.runtime];
  if (image === undefined) {
    return {
      kind: "rejected",
      error: { code: "UnknownRuntime", message: `runtime ${row.runtime} has no image configured` },
    };
  }
  try {
    const token = instanceToken(instanceTokenKey(deps.config), row.id, row.generation);
    const userData = buildUserData({
      workspaceId: row.id,
      platformUrl: deps.config.platformUrl ?? "",
      token: token.token,
      image,
      env: row.env,
    });
    return await runInstance(deps, {
      workspaceId: row.id,
      generation: row.generation,
      tier: row.tier,
      userData,
      hibernation: row.hibernation,
    });
  } catch (err) {
    if (err instanceof InstanceTokenKeyError) {
      // Fails closed: nothing is launched, the row waits with the reason in its lastError, and
      // the operator is told; once the key is configured the same launch goes ahead.
      deps.log.error("launch refused: no instance-token key", {
        workspaceId: row.id,
        hint: "set ADMIN_TOKEN for this function",
      });
      return {
        kind: "transient",
        error: { code: "InstanceTokenKeyMissing", message: err.message },
      };
    }
    if (!(err instanceof UserDataTooLargeError)) throw err;
    return { kind: "rejected", error: { code: "UserDataTooLarge", message: err.message } };
  }
}

/**
 * EC2 will not replay the row's ClientToken. If an instance launched with it lives (the first
 * answer was lost, and a setting has changed since), it is the workspace's: adopt it. If none
 * does, the token is spent for good — move to the next generation and launch under a new one.
 */
async function afterSpentToken(
  deps: Deps,
  row: WorkspaceRow,
  error: AwsProblem,
  actor: Actor,
): Promise<LaunchResult> {
  const token = clientTokenFor(row.id, row.generation);
  let found: TokenInstance | null;
  try {
    found = await findByClientToken(deps, token);
  } catch (err) {
    const lookup = describeAwsError(err);
    const updated = await recordPending(deps, row, lookup);
    return updated
      ? { kind: "pending", row: updated, error: lookup }
      : { kind: "superseded", row: await reload(deps, row) };
  }
  if (found) {
    return recordInstance(deps, row, found, actor, {
      reason: `instance ${found.instanceId} adopted by its ClientToken (${error.code} on re-launch)`,
    });
  }
  const next = await nextGeneration(
    deps,
    row,
    actor,
    `ClientToken ${token} cannot be reused (${error.code}); relaunching as generation ${row.generation + 1}`,
  );
  if (!next) return { kind: "superseded", row: await reload(deps, row) };
  const relaunched = await attemptLaunch(deps, next);
  switch (relaunched.kind) {
    case "launched":
      return recordLaunched(deps, next, relaunched.instanceId, actor);
    case "rejected":
    case "transient":
    case "token-spent": {
      // A fresh token cannot be spent already; whatever happened, the sweep re-drives it.
      const updated = await recordPending(deps, next, relaunched.error);
      return updated
        ? { kind: "pending", row: updated, error: relaunched.error }
        : { kind: "superseded", row: await reload(deps, next) };
    }
    default: {
      const unreachable: never = relaunched;
      throw new Error(`unhandled launch outcome ${JSON.stringify(unreachable)}`);
    }
  }
}

/**
 * Records the instance this attempt launched. When the row moved on meanwhile — a DELETE took it
 * to removing (and, finding no instance, terminated nothing), or a restart moved it to a new
 * generation — the instance belongs to no one and is terminated now rather than left running
 * until the orphan pass sees it past the launch grace. A row that records this very instance (the
 * sweep adopted it first) or another of its own generation is left alone.
 */
async function recordLaunched(
  deps: Deps,
  row: WorkspaceRow,
  instanceId: string,
  actor: Actor,
): Promise<LaunchResult> {
  const result = await recordInstance(deps, row, { instanceId, launchedAt: null }, actor, {
    reason: `instance ${instanceId} launched`,
  });
  if (result.kind !== "superseded") return result;
  const fresh = result.row;
  const ownerless =
    fresh.status === "removing" ||
    fresh.status === "removed" ||
    fresh.generation !== row.generation;
  if (ownerless && fresh.instanceId !== instanceId) {
    const terminated = await terminateInstance(deps, instanceId, deps.clock.now());
    deps.log.info("launch superseded: terminated the instance it launched", {
      workspaceId: row.id,
      instanceId,
      status: fresh.status,
      ...(terminated.kind === "transient" && {
        error: terminated.error,
        left: "to the orphan pass",
      }),
    });
  }
  return result;
}

/**
 * Records `instance` as the workspace's, if the row is still `provisioning` at the generation
 * the instance was launched for and names no instance yet. `launchedAt` null means now.
 */
export async function recordInstance(
  deps: Deps,
  row: WorkspaceRow,
  instance: Pick<TokenInstance, "instanceId" | "launchedAt">,
  actor: Actor,
  opts: { reason: string },
): Promise<LaunchResult> {
  const [changed] = await transition(deps.db, {
    ids: [row.id],
    from: ["provisioning"],
    to: "provisioning",
    instanceId: null,
    where: sql`w.generation = ${row.generation}`,
    reason: opts.reason,
    actor,
    set: {
      instanceId: instance.instanceId,
      launchedAt: instance.launchedAt ?? "now",
      lastError: null,
    },
  });
  if (changed) return { kind: "launched", row: changed.row };
  return { kind: "superseded", row: await reload(deps, row) };
}

/** Notes why the launch is still pending, on the same conditions as every launch write. */
async function recordPending(
  deps: Deps,
  row: WorkspaceRow,
  error: AwsProblem,
): Promise<WorkspaceRow | null> {
  const result = await deps.db.execute(sql`
    update workspaces set last_error = ${`launch pending: ${error.code}: ${error.message}`}
    where id = ${row.id} and status = 'provisioning' and generation = ${row.generation}
      and instance_id is null
    returning id`);
  if (rowsOf(result).length === 0) return null;
  return reload(deps, row);
}

/**
 * Moves a `provisioning` row without an instance to the next generation (a new ClientToken),
 * with an event saying why, and stores the token the next instance will be launched with.
 * Null when the row moved on meanwhile.
 */
export async function nextGeneration(
  deps: Deps,
  row: WorkspaceRow,
  actor: Actor,
  reason: string,
): Promise<WorkspaceRow | null> {
  // Refuse before the move: a generation without its instance token would launch nothing.
  const key = instanceTokenKey(deps.config);
  const [changed] = await transition(deps.db, {
    ids: [row.id],
    from: ["provisioning"],
    to: "provisioning",
    instanceId: null,
    where: sql`w.generation = ${row.generation}`,
    reason,
    actor,
    set: { bumpGeneration: true, launchedAt: null, lastError: reason },
  });
  if (!changed) return null;
  const next = changed.row;
  const stored = await replaceTokens(
    deps.db,
    next.id,
    instanceToken(key, next.id, next.generation),
    next.generation,
  );
  // A DELETE won the race: nothing to launch for.
  return stored ? next : null;
}

async function reload(deps: Deps, row: WorkspaceRow): Promise<WorkspaceRow> {
  const [fresh] = await deps.db.select().from(workspaces).where(eq(workspaces.id, row.id));
  return fresh ?? row;
}
