import { createHash } from "node:crypto";
import {
  GetConsoleOutputCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { callOptions } from "../deadline.js";
import type { Deps } from "../deps.js";
import {
  type AwsProblem,
  awsErrorCode,
  describeAwsError,
  isPermissionError,
  isTransientAwsError,
} from "./errors.js";
import { hibernationPlan } from "./hibernation.js";

export interface LaunchSpec {
  workspaceId: string;
  generation: number;
  tier: number;
  userData: string;
  /** Launch able to hibernate: HibernationOptions.Configured and an encrypted, sized root volume. */
  hibernation?: boolean;
}

// The root device of Amazon Linux 2023 images (the default WORKSPACE_AMI).
const ROOT_DEVICE = "/dev/xvda";

export type LaunchOutcome =
  | { kind: "launched"; instanceId: string }
  /**
   * Nothing is known: the sweep re-drives the launch with the same ClientToken. A refusal of
   * the deployment's identity is here too (`error.misconfigured`): an operator's fix makes the
   * same request succeed.
   */
  | { kind: "transient"; error: AwsProblem }
  /**
   * The ClientToken cannot be replayed: `IdempotentInstanceTerminated` (its instance is gone) or
   * `IdempotentParameterMismatch` (it was used with other parameters — a setting changed since
   * the first attempt). An instance launched with it may still live; the caller decides.
   */
  | { kind: "token-spent"; error: AwsProblem }
  /** EC2 refused the request itself; retrying the same request cannot help. */
  | { kind: "rejected"; error: AwsProblem };

/** `<workspace id>:<generation>` — 38+ characters, within EC2's 64. */
export const clientTokenFor = (workspaceId: string, generation: number) =>
  `${workspaceId}:${generation}`;

export const TAG_MANAGED = "wcp:managed";
export const TAG_DEPLOYMENT = "wcp:deployment";
export const TAG_WORKSPACE = "wcp:workspace-id";
export const TAG_GENERATION = "wcp:generation";

/**
 * Launches a workspace's instance. Idempotent by ClientToken (`<id>:<generation>`): re-driving a
 * launch whose answer was lost returns the same instance instead of a second one
 * (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html). Tagged at launch, so no
 * instance ever exists untagged; IMDSv2 required.
 */
export async function runInstance(
  deps: Pick<Deps, "aws" | "config" | "deadline">,
  spec: LaunchSpec,
): Promise<LaunchOutcome> {
  const c = deps.config;
  const instanceType = c.tierInstanceTypes[String(spec.tier)];
  if (!instanceType) {
    return {
      kind: "rejected",
      error: { code: "UnknownTier", message: `no instance type for tier ${spec.tier}` },
    };
  }
  let hibernation: { rootVolumeGiB: number } | null = null;
  if (spec.hibernation) {
    const plan = hibernationPlan(instanceType);
    if (plan.kind === "unsupported") {
      return { kind: "rejected", error: { code: "HibernationUnsupported", message: plan.reason } };
    }
    hibernation = plan;
  }
  const subnets = c.workspaceSubnetIds;
  // Spread workspaces over the subnets (and so the AZs) deterministically: a re-drive must send
  // the same parameters under the same ClientToken.
  const subnet =
    subnets.length > 0
      ? subnets[
          createHash("sha256").update(spec.workspaceId).digest().readUInt32BE(0) % subnets.length
        ]
      : undefined;
  const tags = [
    { Key: TAG_MANAGED, Value: "true" },
    { Key: TAG_DEPLOYMENT, Value: c.deploymentId },
    { Key: TAG_WORKSPACE, Value: spec.workspaceId },
    { Key: TAG_GENERATION, Value: String(spec.generation) },
    { Key: "Name", Value: `ws-${spec.workspaceId.slice(0, 12)}` },
  ];
  try {
    const out = await deps.aws.ec2.send(
      new RunInstancesCommand({
        ClientToken: clientTokenFor(spec.workspaceId, spec.generation),
        ImageId: c.workspaceAmi,
        InstanceType: instanceType as never,
        MinCount: 1,
        MaxCount: 1,
        // The SDK expects user-data already base64-encoded.
        UserData: Buffer.from(spec.userData, "utf8").toString("base64"),
        MetadataOptions: {
          HttpTokens: "required",
          HttpEndpoint: "enabled",
          HttpPutResponseHopLimit: 2,
        },
        ...(c.workspaceInstanceProfile !== "" && {
          IamInstanceProfile: { Name: c.workspaceInstanceProfile },
        }),
        ...(subnet !== undefined && { SubnetId: subnet }),
        ...(c.workspaceSecurityGroupIds.length > 0 && {
          SecurityGroupIds: c.workspaceSecurityGroupIds,
        }),
        ...(hibernation !== null && {
          HibernationOptions: { Configured: true },
          // Hibernation writes the RAM to the root volume: it must be EBS, encrypted, and hold
          // the RAM besides the OS (hibernating-prerequisites.html).
          BlockDeviceMappings: [
            {
              DeviceName: ROOT_DEVICE,
              Ebs: {
                Encrypted: true,
                VolumeSize: hibernation.rootVolumeGiB,
                VolumeType: "gp3",
                DeleteOnTermination: true,
              },
            },
          ],
        }),
        TagSpecifications: [
          { ResourceType: "instance", Tags: tags },
          { ResourceType: "volume", Tags: tags },
        ],
      }),
      callOptions(deps),
    );
    const instanceId = out.Instances?.[0]?.InstanceId;
    if (!instanceId) {
      return {
        kind: "transient",
        error: { code: "MalformedReply", message: "RunInstances returned no instance" },
      };
    }
    return { kind: "launched", instanceId };
  } catch (err) {
    const code = awsErrorCode(err);
    if (code === "IdempotentParameterMismatch" || code === "IdempotentInstanceTerminated") {
      return { kind: "token-spent", error: describeAwsError(err) };
    }
    return isTransientAwsError(err) || isPermissionError(err)
      ? { kind: "transient", error: describeAwsError(err) }
      : { kind: "rejected", error: describeAwsError(err) };
  }
}

export type TerminateOutcome = { kind: "terminated" } | { kind: "transient"; error: AwsProblem };

/**
 * Terminates an instance; idempotent (terminating a terminated instance succeeds). An id EC2 no
 * longer knows counts as gone only past the launch grace — inside it, EC2 may simply not list a
 * fresh instance yet.
 */
export async function terminateInstance(
  deps: Pick<Deps, "aws" | "config" | "clock" | "deadline">,
  instanceId: string,
  launchedAt: Date | null,
): Promise<TerminateOutcome> {
  try {
    await deps.aws.ec2.send(
      new TerminateInstancesCommand({ InstanceIds: [instanceId] }),
      callOptions(deps),
    );
    return { kind: "terminated" };
  } catch (err) {
    if (awsErrorCode(err) === "InvalidInstanceID.NotFound" && pastLaunchGrace(deps, launchedAt)) {
      return { kind: "terminated" };
    }
    return { kind: "transient", error: describeAwsError(err) };
  }
}

export type ConsoleOutcome =
  | { kind: "ok"; output: string; timestamp: Date | null }
  /** EC2 no longer has the instance (purged after termination), and it is past its launch grace. */
  | { kind: "gone"; error: AwsProblem }
  | { kind: "error"; transient: boolean; error: AwsProblem };

/**
 * The instance's console output (EC2 keeps the most recent 64 KB), decoded from base64. A
 * terminated instance still has its output for a while — EC2 posts it "shortly after … termination"
 * and keeps it "at least one hour after the most recent post"
 * (docs.aws.amazon.com/AWSEC2/latest/APIReference/API_GetConsoleOutput.html) — so only an id EC2
 * answers `InvalidInstanceID.NotFound` for is `gone`, and only past the launch grace: inside it,
 * EC2 may not list a fresh instance yet (eventual consistency), which is `transient`.
 */
export async function consoleOutput(
  deps: Pick<Deps, "aws" | "config" | "clock" | "deadline">,
  instanceId: string,
  launchedAt: Date | null,
): Promise<ConsoleOutcome> {
  try {
    const out = await deps.aws.ec2.send(
      new GetConsoleOutputCommand({ InstanceId: instanceId }),
      callOptions(deps),
    );
    return {
      kind: "ok",
      output: out.Output ? Buffer.from(out.Output, "base64").toString("utf8") : "",
      timestamp: out.Timestamp ?? null,
    };
  } catch (err) {
    if (awsErrorCode(err) === "InvalidInstanceID.NotFound") {
      return pastLaunchGrace(deps, launchedAt)
        ? { kind: "gone", error: describeAwsError(err) }
        : { kind: "error", transient: true, error: describeAwsError(err) };
    }
    return { kind: "error", transient: isTransientAwsError(err), error: describeAwsError(err) };
  }
}

/** Whether an instance launched at `launchedAt` (null: unknown, so no grace) is past its grace. */
function pastLaunchGrace(deps: Pick<Deps, "config" | "clock">, launchedAt: Date | null): boolean {
  const age = launchedAt
    ? deps.clock.now().getTime() - launchedAt.getTime()
    : Number.POSITIVE_INFINITY;
  return age >= deps.config.launchGraceSeconds * 1000;
}
