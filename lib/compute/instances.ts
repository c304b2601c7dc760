import {
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  type Filter,
  type Instance,
} from "@aws-sdk/client-ec2";
import { forEachBounded } from "../bounded.js";
import { callOptions } from "../deadline.js";
import type { Deps } from "../deps.js";
import { type AwsProblem, describeAwsError } from "./errors.js";

/**
 * THE running check — the single source of truth for "is this workspace's instance running".
 * Every caller (status route, plugin install/uninstall, the sweep) goes through this module, and
 * only this module sends `DescribeInstancesCommand` (an architecture test holds that line).
 *
 * Three outcomes, never two:
 * - `running`   — EC2 says `pending` or `running`;
 * - `stopped`   — EC2 says `stopping`, `stopped`, `shutting-down` or `terminated`, or the instance
 *                 is absent and was launched more than `LAUNCH_GRACE_SECONDS` ago (or its launch
 *                 time is unknown);
 * - `transient` — anything else: throttling, 5xx, timeouts, connection errors, malformed replies,
 *                 permission errors, or absent within the launch grace (EC2 is eventually
 *                 consistent right after RunInstances). A transient outcome says nothing about
 *                 the instance and must never be acted on as if it were `stopped`.
 */
export type InstanceCheck =
  | { outcome: "running"; instanceId: string; state: "pending" | "running" }
  | {
      outcome: "stopped";
      instanceId: string;
      state: StoppedState;
      /** EC2's StateReason code, e.g. `Client.UserInitiatedHibernate` after a hibernation. */
      reason?: string;
    }
  | { outcome: "transient"; instanceId: string; error: AwsProblem };

export type StoppedState = "stopping" | "stopped" | "shutting-down" | "terminated" | "not-found";

export type CheckOutcome = InstanceCheck["outcome"];

export interface CheckOptions {
  /** When each instance was launched; absent or null means unknown (no grace). */
  launchedAt?: ReadonlyMap<string, Date | null>;
}

// "The maximum number of filter values specified on a single call is 200."
// (docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html)
export const MAX_IDS_PER_CALL = 200;
// Calls in flight at once: the non-mutating bucket refills at 20/s per account and region
// (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html); the sweep shares it with
// everything else the account runs, so stay well below it.
export const PARALLEL_CALLS = 4;

/**
 * Checks many instances with `⌈N/200⌉` DescribeInstances calls (plus pages), a few in parallel.
 * Uses an `instance-id` *filter*, not `InstanceIds`: one unknown id in `InstanceIds` fails the
 * whole call with InvalidInstanceID.NotFound, and an empty `InstanceIds` lists every instance.
 * A failed call makes only its own ids `transient`; the other calls' results stand.
 *
 * @returns exactly one check per distinct id.
 */
export async function checkInstances(
  deps: Pick<Deps, "aws" | "clock" | "config" | "deadline">,
  ids: readonly string[],
  opts: CheckOptions = {},
): Promise<Map<string, InstanceCheck>> {
  const unique = [...new Set(ids)];
  const results = new Map<string, InstanceCheck>();
  if (unique.length === 0) return results;

  const chunks: string[][] = [];
  for (let i = 0; i < unique.length; i += MAX_IDS_PER_CALL) {
    chunks.push(unique.slice(i, i + MAX_IDS_PER_CALL));
  }
  const now = deps.clock.now().getTime();
  const graceMs = deps.config.launchGraceSeconds * 1000;

  await forEachBounded(chunks, PARALLEL_CALLS, async (chunk) => {
    let found: Map<string, Instance>;
    try {
      found = await describeAll(deps, [{ Name: "instance-id", Values: chunk }], chunk);
    } catch (err) {
      const error = describeAwsError(err);
      for (const id of chunk) results.set(id, { outcome: "transient", instanceId: id, error });
      return;
    }
    for (const id of chunk) {
      const instance = found.get(id);
      if (instance) {
        results.set(id, classifyState(id, instance));
        continue;
      }
      const launched = opts.launchedAt?.get(id) ?? null;
      if (launched !== null && now - launched.getTime() < graceMs) {
        results.set(id, {
          outcome: "transient",
          instanceId: id,
          error: {
            code: "NotYetVisible",
            message: "EC2 does not list the instance yet (launched within the grace period)",
          },
        });
      } else {
        results.set(id, { outcome: "stopped", instanceId: id, state: "not-found" });
      }
    }
  });
  return results;
}

/** A batch of one. */
export async function checkInstance(
  deps: Pick<Deps, "aws" | "clock" | "config" | "deadline">,
  instanceId: string,
  launchedAt: Date | null = null,
): Promise<InstanceCheck> {
  const results = await checkInstances(deps, [instanceId], {
    launchedAt: new Map([[instanceId, launchedAt]]),
  });
  const check = results.get(instanceId);
  if (!check) throw new Error("running check returned no outcome");
  return check;
}

function classifyState(id: string, instance: Instance): InstanceCheck {
  const state = instance.State?.Name;
  switch (state) {
    case "pending":
    case "running":
      return { outcome: "running", instanceId: id, state };
    case "stopping":
    case "stopped":
    case "shutting-down":
    case "terminated": {
      const reason = instance.StateReason?.Code;
      return { outcome: "stopped", instanceId: id, state, ...(reason && { reason }) };
    }
    default:
      // A state we do not know is a malformed reply, not evidence of death.
      return {
        outcome: "transient",
        instanceId: id,
        error: { code: "MalformedReply", message: `unknown instance state ${String(state)}` },
      };
  }
}

/** A tagged instance of this deployment, as the orphan pass needs it. */
export interface TaggedInstance {
  instanceId: string;
  state: string;
  workspaceId: string | null;
  launchedAt: Date | null;
  /** The ClientToken it was launched with: `<workspace id>:<generation>` for ours. */
  clientToken: string | null;
}

/**
 * Lists this deployment's instances that are not terminated (tag filters
 * `wcp:managed=true` and `wcp:deployment=<DEPLOYMENT_ID>`), paginated.
 * Throws on any failure: the orphan pass must not act on a partial list.
 */
export async function listDeploymentInstances(
  deps: Pick<Deps, "aws" | "config" | "deadline">,
): Promise<TaggedInstance[]> {
  const found = await describeAll(deps, [
    { Name: "tag:wcp:managed", Values: ["true"] },
    { Name: "tag:wcp:deployment", Values: [deps.config.deploymentId] },
    {
      Name: "instance-state-name",
      Values: ["pending", "running", "stopping", "stopped", "shutting-down"],
    },
  ]);
  return [...found.values()].map((i) => ({
    instanceId: i.InstanceId ?? "",
    state: i.State?.Name ?? "unknown",
    workspaceId: i.Tags?.find((t) => t.Key === "wcp:workspace-id")?.Value ?? null,
    launchedAt: i.LaunchTime ?? null,
    clientToken: i.ClientToken || null,
  }));
}

/** An instance found by the ClientToken it was launched with. */
export interface TokenInstance {
  instanceId: string;
  state: "pending" | "running" | "stopping" | "stopped";
  launchedAt: Date | null;
}

/**
 * Finds the live instances that launches with these ClientTokens made — ⌈N/200⌉ calls with the
 * `client-token` filter (200 filter values per call, API_DescribeInstances.html), a few in
 * parallel. After an ambiguous RunInstances (a timeout after EC2 accepted it) this is how the
 * instance is recovered: ownership follows the token, not a recorded id
 * (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html).
 *
 * Instances shutting down or terminated are left out: they are nobody's any more. A token that
 * maps to nothing may still have an instance EC2 does not list yet (eventual consistency), so
 * "absent" never means "never launched". Throws when any call fails: absent must not be read
 * from a failed call.
 */
export async function findByClientTokens(
  deps: Pick<Deps, "aws" | "deadline">,
  tokens: readonly string[],
): Promise<Map<string, TokenInstance>> {
  const unique = [...new Set(tokens)].filter((t) => t !== "");
  const found = new Map<string, TokenInstance>();
  // Never an empty Values list: AWS matches every instance that has the attribute.
  if (unique.length === 0) return found;
  const chunks: string[][] = [];
  for (let i = 0; i < unique.length; i += MAX_IDS_PER_CALL) {
    chunks.push(unique.slice(i, i + MAX_IDS_PER_CALL));
  }
  await forEachBounded(chunks, PARALLEL_CALLS, async (chunk) => {
    const instances = await describeAll(deps, [{ Name: "client-token", Values: chunk }]);
    for (const i of instances.values()) {
      const state = i.State?.Name;
      const token = i.ClientToken;
      if (!i.InstanceId || !token || !chunk.includes(token)) continue;
      if (state !== "pending" && state !== "running" && state !== "stopping" && state !== "stopped")
        continue;
      found.set(token, { instanceId: i.InstanceId, state, launchedAt: i.LaunchTime ?? null });
    }
  });
  return found;
}

/** The batch of one: the live instance launched with `clientToken`, or null. */
export async function findByClientToken(
  deps: Pick<Deps, "aws" | "deadline">,
  clientToken: string,
): Promise<TokenInstance | null> {
  if (clientToken === "") return null;
  return (await findByClientTokens(deps, [clientToken])).get(clientToken) ?? null;
}

async function describeAll(
  deps: Pick<Deps, "aws" | "deadline">,
  filters: Filter[],
  expectedIds?: readonly string[],
): Promise<Map<string, Instance>> {
  const found = new Map<string, Instance>();
  let nextToken: string | undefined;
  do {
    const page: DescribeInstancesCommandOutput = await deps.aws.ec2.send(
      new DescribeInstancesCommand({
        Filters: filters,
        MaxResults: 1000,
        ...(nextToken !== undefined && { NextToken: nextToken }),
      }),
      callOptions(deps),
    );
    if (!Array.isArray(page.Reservations)) {
      throw Object.assign(new Error("DescribeInstances reply has no reservations"), {
        name: "MalformedReply",
      });
    }
    for (const reservation of page.Reservations) {
      for (const instance of reservation.Instances ?? []) {
        if (!instance.InstanceId) continue;
        // A filter on ids cannot return others; if it does, the reply is not to be trusted.
        if (expectedIds && !expectedIds.includes(instance.InstanceId)) continue;
        found.set(instance.InstanceId, instance);
      }
    }
    nextToken = page.NextToken || undefined;
  } while (nextToken !== undefined);
  return found;
}
