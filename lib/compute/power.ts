import { StartInstancesCommand, StopInstancesCommand } from "@aws-sdk/client-ec2";
import { callOptions } from "../deadline.js";
import type { Deps } from "../deps.js";
import { type AwsProblem, awsErrorCode, describeAwsError, isTransientAwsError } from "./errors.js";

/**
 * Stopping and starting workspace instances. Both calls are idempotent in EC2 (stopping a stopped
 * instance, starting a running one, answer with the current state), so the SDK's retries and a
 * sweep's re-drive are safe. An instance EC2 no longer has is `gone` — past the launch grace; a
 * fresh id EC2 does not list yet is transient (eventual consistency).
 */
export type PowerOutcome =
  | { kind: "accepted" }
  /** The instance is terminated or unknown to EC2: there is nothing to stop or start. */
  | { kind: "gone"; error: AwsProblem }
  | { kind: "transient"; error: AwsProblem }
  /** EC2 refused the request itself (e.g. hibernation the instance was not launched for). */
  | { kind: "refused"; error: AwsProblem };

function classify(
  deps: Pick<Deps, "clock" | "config">,
  err: unknown,
  launchedAt: Date | null,
): PowerOutcome {
  const code = awsErrorCode(err);
  const error = describeAwsError(err);
  if (code === "InvalidInstanceID.NotFound") {
    const age = launchedAt ? deps.clock.now().getTime() - launchedAt.getTime() : Infinity;
    return age >= deps.config.launchGraceSeconds * 1000
      ? { kind: "gone", error }
      : { kind: "transient", error };
  }
  // "The instance … is not in a state from which it can be started/stopped": a terminated
  // instance answers this (docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html,
  // IncorrectInstanceState); the caller reads the state with the running check to tell.
  if (code === "IncorrectInstanceState") return { kind: "transient", error };
  return isTransientAwsError(err) ? { kind: "transient", error } : { kind: "refused", error };
}

/**
 * StopInstances for one instance; with `hibernate`, a hibernation (the instance must have been
 * launched with HibernationOptions.Configured; EC2 falls back to a plain stop when hibernating
 * fails at run time: docs.aws.amazon.com/AWSEC2/latest/UserGuide/hibernating-troubleshooting.html).
 */
export async function stopInstance(
  deps: Pick<Deps, "aws" | "clock" | "config" | "deadline">,
  instanceId: string,
  launchedAt: Date | null,
  opts: { hibernate: boolean },
): Promise<PowerOutcome> {
  try {
    await deps.aws.ec2.send(
      new StopInstancesCommand({
        InstanceIds: [instanceId],
        ...(opts.hibernate && { Hibernate: true }),
      }),
      callOptions(deps),
    );
    return { kind: "accepted" };
  } catch (err) {
    return classify(deps, err, launchedAt);
  }
}

/** StartInstances for one instance. */
export async function startInstance(
  deps: Pick<Deps, "aws" | "clock" | "config" | "deadline">,
  instanceId: string,
  launchedAt: Date | null,
): Promise<PowerOutcome> {
  try {
    await deps.aws.ec2.send(
      new StartInstancesCommand({ InstanceIds: [instanceId] }),
      callOptions(deps),
    );
    return { kind: "accepted" };
  } catch (err) {
    return classify(deps, err, launchedAt);
  }
}
