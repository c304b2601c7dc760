import { and, eq, inArray, isNull, ne } from "drizzle-orm";
import { describeAwsError } from "../compute/errors.js";
import { findByClientTokens, MAX_IDS_PER_CALL } from "../compute/instances.js";
import { clientTokenFor } from "../compute/launch.js";
import { type WorkspaceRow, type WorkspaceStatus, workspaces } from "../db/schema.js";
import type { Deadline } from "../deadline.js";
import { remainingMs } from "../deadline.js";
import type { Deps } from "../deps.js";
import { safeError } from "../redact.js";
import { LIVENESS_STATUSES, livenessBatch } from "../sweep/liveness.js";
import { POWER_STATUSES, powerBatch } from "../sweep/power-batch.js";
import { READINESS_STATUSES, readinessBatch } from "../sweep/readiness.js";
import { type PassContext, type PassCounts, passActor, zeroCounts } from "../sweep/types.js";
import { recordInstance } from "../workspaces/launch.js";
import { afterTransitions } from "./after-transitions.js";
import { instanceStateChange } from "./event.js";

/** What one event led to. */
export type EventOutcome =
  /** Not an EC2 state-change event at all: nothing was looked up. */
  | { kind: "malformed" }
  /** No workspace of this deployment owns the instance: no AWS call was made about it. */
  | { kind: "not-ours"; instanceId: string }
  /** The instance's workspaces went through the sweep's rules; `counts` says what changed. */
  | { kind: "reconciled"; instanceId: string; workspaceIds: string[]; counts: PassCounts };

/**
 * The sweep's passes that act on one instance's state, in the sweep's order, each with the
 * statuses it looks at. Power only records what the check confirms here (no re-drive, no
 * relaunch): those ask EC2 to change an instance, and remain the scheduled sweep's.
 */
const PASSES: readonly {
  statuses: readonly WorkspaceStatus[];
  run: (ctx: PassContext, rows: readonly WorkspaceRow[], counts: PassCounts) => Promise<void>;
}[] = [
  { statuses: READINESS_STATUSES, run: readinessBatch },
  { statuses: LIVENESS_STATUSES, run: livenessBatch },
  // No re-drive: power only records what the check confirms here.
  { statuses: POWER_STATUSES, run: (ctx, rows, counts) => powerBatch(ctx, rows, counts) },
];

/**
 * Reconciles the workspace(s) of the instance an `EC2 Instance State-change Notification` names,
 * within `deadline`. The event is a hint, never the truth — it can arrive late, twice or out of
 * order — so the state it names is never written: the instance's rows go through the sweep's own
 * passes (readiness, liveness, power), which run the running check and make the same
 * conditional transitions. A stale `stopped` after a start finds the instance running and
 * changes nothing; a `transient` check changes nothing; a duplicate finds its work done.
 *
 * Ownership, as the sweep has it: a row that names the instance, else a `provisioning` row whose
 * launch answer was lost and whose current ClientToken launched it (adopted as the launch pass
 * adopts). An instance no row owns — another deployment's, or anyone else's in the account, as
 * the event carries no tags to filter on — is ignored after one query, before any AWS call.
 */
export async function reconcileInstanceEvent(
  deps: Deps,
  event: unknown,
  opts: { deadline: Deadline },
): Promise<EventOutcome> {
  const parsed = instanceStateChange.safeParse(event);
  if (!parsed.success) return { kind: "malformed" };
  const instanceId = parsed.data.detail["instance-id"];
  const runDeps: Deps = { ...deps, deadline: opts.deadline };
  const ctx: PassContext = {
    deps: runDeps,
    budget: { remainingMs: () => remainingMs(opts.deadline) },
    batchSize: 1,
    refused: new Map(),
    trigger: "ec2-event",
  };

  let owners = await rowsNaming(deps, instanceId);
  if (owners.length === 0) owners = await adoptByClientToken(ctx, instanceId);
  if (owners.length === 0) return { kind: "not-ours", instanceId };

  const ids = owners.map((r) => r.id);
  const counts = zeroCounts();
  for (const pass of PASSES) {
    // Read again before each pass: the one before may have moved the row on.
    const rows = (await rowsNaming(deps, instanceId, ids)).filter((r) =>
      pass.statuses.includes(r.status),
    );
    if (rows.length > 0) await pass.run(ctx, rows, counts);
  }
  if (counts.changed > 0) await afterTransitions(runDeps, ids);
  return { kind: "reconciled", instanceId, workspaceIds: ids, counts };
}

/** Instance-backed rows that name the instance (normally one; a restart race could leave two). */
async function rowsNaming(
  deps: Deps,
  instanceId: string,
  ids?: readonly string[],
): Promise<WorkspaceRow[]> {
  return deps.db
    .select()
    .from(workspaces)
    .where(
      and(
        eq(workspaces.instanceId, instanceId),
        ne(workspaces.runtime, "external"),
        ids === undefined ? undefined : inArray(workspaces.id, [...ids]),
      ),
    )
    .limit(10);
}

/**
 * A launch whose answer was lost leaves its row `provisioning` with no instance; the instance's
 * first events (`pending`, `running`) may be the first news of it. The rows' current ClientTokens
 * are looked up as the launch pass does (findByClientTokens, one call for up to 200) and the row
 * whose token launched this instance adopts it. No such rows: no call. A failed lookup adopts
 * nothing — the launch pass re-drives under the same token.
 */
async function adoptByClientToken(ctx: PassContext, instanceId: string): Promise<WorkspaceRow[]> {
  const { deps } = ctx;
  const waiting = await deps.db
    .select()
    .from(workspaces)
    .where(
      and(
        eq(workspaces.status, "provisioning"),
        ne(workspaces.runtime, "external"),
        isNull(workspaces.instanceId),
      ),
    )
    .limit(MAX_IDS_PER_CALL);
  if (waiting.length === 0) return [];
  const byToken = new Map(waiting.map((r) => [clientTokenFor(r.id, r.generation), r]));
  let found: Awaited<ReturnType<typeof findByClientTokens>>;
  try {
    found = await findByClientTokens(deps, [...byToken.keys()]);
  } catch (err) {
    deps.log.warn("ClientToken lookup for an EC2 event failed; the launch pass adopts later", {
      instanceId,
      error: describeAwsError(err).code,
    });
    return [];
  }
  for (const [token, instance] of found) {
    const row = byToken.get(token);
    if (!row || instance.instanceId !== instanceId) continue;
    try {
      const result = await recordInstance(deps, row, instance, passActor(ctx, "launch"), {
        reason: `instance ${instanceId} adopted by its ClientToken (the launch's answer was lost)`,
      });
      return result.kind === "launched" ? [result.row] : rowsNaming(deps, instanceId);
    } catch (err) {
      deps.log.error("adopting an instance from an EC2 event failed", {
        workspaceId: row.id,
        error: safeError(err),
      });
      return [];
    }
  }
  return [];
}
