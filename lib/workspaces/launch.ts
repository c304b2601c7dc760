import { eq, sql } from "drizzle-orm";
import { type LaunchOutcome, runInstance } from "../compute/launch.js";
import { buildUserData, UserDataTooLargeError } from "../compute/user-data.js";
import { workspaces } from "../db/schema.js";
import type { Deps } from "../deps.js";
import type { Actor, WorkspaceRow } from "./model.js";
import { instanceToken } from "./tokens.js";
import { transition } from "./transition.js";

export type LaunchResult =
  | { kind: "launched"; row: WorkspaceRow }
  | { kind: "pending"; row: WorkspaceRow; error: { code: string; message: string } }
  | { kind: "failed"; row: WorkspaceRow; error: { code: string; message: string } }
  /** Another writer moved the row on (removed, relaunched) while we launched. */
  | { kind: "superseded"; row: WorkspaceRow };

/**
 * Launches the instance of a `provisioning` workspace's current generation and records it.
 * Safe to repeat (the API at create/restart, the sweep's launch pass on a lost answer): the
 * ClientToken and user-data depend only on the row, so EC2 hands back the same instance.
 *
 * - launched  → the row names the instance (status stays `provisioning`; readiness brings it online);
 * - transient → the row stays without an instance and records the error; the sweep re-drives it;
 * - rejected  → `failed` with `lastError` (a bad AMI, a bad profile: retrying cannot help).
 */
export async function launchWorkspace(
  deps: Deps,
  row: WorkspaceRow,
  actor: Actor,
): Promise<LaunchResult> {
  const image = deps.config.runtimeImages[row.runtime];
  let outcome: LaunchOutcome;
  if (image === undefined) {
    outcome = {
      kind: "rejected",
      error: { code: "UnknownRuntime", message: `runtime ${row.runtime} has no image configured` },
    };
  } else {
    try {
      const token = instanceToken(deps.config.adminToken ?? "", row.id, row.generation);
      const userData = buildUserData({
        workspaceId: row.id,
        platformUrl: deps.config.platformUrl ?? "",
        token: token.token,
        image,
        env: row.env,
      });
      outcome = await runInstance(deps, {
        workspaceId: row.id,
        generation: row.generation,
        tier: row.tier,
        userData,
      });
    } catch (err) {
      if (!(err instanceof UserDataTooLargeError)) throw err;
      outcome = { kind: "rejected", error: { code: "UserDataTooLarge", message: err.message } };
    }
  }

  switch (outcome.kind) {
    case "launched": {
      const [changed] = await transition(deps.db, {
        ids: [row.id],
        from: ["provisioning"],
        to: "provisioning",
        instanceId: null,
        where: sql`w.generation = ${row.generation}`,
        reason: `instance ${outcome.instanceId} launched`,
        actor,
        set: { instanceId: outcome.instanceId, launchedAt: "now", lastError: null },
      });
      if (changed) return { kind: "launched", row: changed.row };
      return { kind: "superseded", row: await reload(deps, row) };
    }
    case "transient": {
      const [updated] = await deps.db
        .update(workspaces)
        .set({ lastError: `launch pending: ${outcome.error.code}: ${outcome.error.message}` })
        .where(eq(workspaces.id, row.id))
        .returning();
      return { kind: "pending", row: updated ?? row, error: outcome.error };
    }
    case "rejected": {
      const [changed] = await transition(deps.db, {
        ids: [row.id],
        from: ["provisioning"],
        to: "failed",
        instanceId: null,
        reason: `launch rejected: ${outcome.error.code}`,
        actor,
        set: { lastError: `${outcome.error.code}: ${outcome.error.message}` },
      });
      return {
        kind: "failed",
        row: changed?.row ?? (await reload(deps, row)),
        error: outcome.error,
      };
    }
    default: {
      const unreachable: never = outcome;
      throw new Error(`unhandled launch outcome ${JSON.stringify(unreachable)}`);
    }
  }
}

async function reload(deps: Deps, row: WorkspaceRow): Promise<WorkspaceRow> {
  const [fresh] = await deps.db.select().from(workspaces).where(eq(workspaces.id, row.id));
  return fresh ?? row;
}
