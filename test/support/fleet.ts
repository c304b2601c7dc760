import { type EC2Client, RunInstancesCommand, type Tag } from "@aws-sdk/client-ec2";
import { defaultImageId } from "../../lib/localcloud/index.js";

/**
 * Launches `count` instances through the real SDK, 20 per RunInstances call (the local cloud's
 * per-call cap), each with `tags`, and returns their ids in launch order.
 */
export async function launchInstances(
  ec2: EC2Client,
  count: number,
  tags: Tag[] = [],
): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < count) {
    const n = Math.min(20, count - ids.length);
    const out = await ec2.send(
      new RunInstancesCommand({
        ImageId: defaultImageId,
        InstanceType: "t3.small",
        MinCount: n,
        MaxCount: n,
        ...(tags.length > 0 && { TagSpecifications: [{ ResourceType: "instance", Tags: tags }] }),
      }),
    );
    for (const i of out.Instances ?? []) if (i.InstanceId) ids.push(i.InstanceId);
  }
  return ids;
}
