import { ListCommandsCommand, SendCommandCommand } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AwsClients } from "../../../lib/compute/clients.js";
import { launchInstances } from "../../support/fleet.js";
import { type ComputeCloud, startComputeCloud, waitFor } from "../compute/cloud.js";

// ListCommands (ssm/latest/APIReference/API_ListCommands.html): SSM's Run Command history, how a
// command whose SendCommand answer was lost is found again.

let c: ComputeCloud;
let aws: AwsClients;
let a = "";
let b = "";

beforeAll(async () => {
  c = await startComputeCloud();
  aws = c.clients({ maxAttempts: 1 });
  [a = "", b = ""] = await launchInstances(aws.ec2, 2);
  await waitFor(async () => {
    const views = await Promise.all([c.instance(a), c.instance(b)]);
    return views.every((v) => v.ssmPingStatus === "Online") ? true : undefined;
  });
});
afterAll(async () => {
  await c?.close();
});

const send = (instanceId: string, comment: string) =>
  aws.ssm.send(
    new SendCommandCommand({
      DocumentName: "AWS-RunShellScript",
      InstanceIds: [instanceId],
      Parameters: { commands: ["true"] },
      Comment: comment,
    }),
  );

describe("ListCommands", () => {
  it("lists an instance's commands newest first, with their comments, narrowed by InvokedAfter", async () => {
    // Prepare
    const before = new Date(Date.now() - 1000);
    const first = await send(a, "first");
    await new Promise((r) => setTimeout(r, 20));
    const second = await send(a, "second");
    await send(b, "elsewhere");

    // Act
    const listed = await aws.ssm.send(
      new ListCommandsCommand({
        InstanceId: a,
        Filters: [{ key: "InvokedAfter", value: before.toISOString() }],
      }),
    );
    const later = await aws.ssm.send(
      new ListCommandsCommand({
        InstanceId: a,
        Filters: [{ key: "InvokedAfter", value: new Date(Date.now() + 60_000).toISOString() }],
      }),
    );

    // Assess
    expect(listed.Commands?.map((x) => [x.CommandId, x.Comment])).toEqual([
      [second.Command?.CommandId, "second"],
      [first.Command?.CommandId, "first"],
    ]);
    expect(later.Commands).toEqual([]);
  });

  it("pages by MaxResults and refuses what AWS refuses", async () => {
    for (let i = 0; i < 3; i++) await send(b, `page-${i}`);
    const one = await aws.ssm.send(new ListCommandsCommand({ InstanceId: b, MaxResults: 2 }));
    const two = await aws.ssm.send(
      new ListCommandsCommand({ InstanceId: b, MaxResults: 2, NextToken: one.NextToken }),
    );
    expect(one.Commands).toHaveLength(2);
    expect(one.NextToken).toBeTruthy();
    expect((two.Commands ?? []).length).toBeGreaterThanOrEqual(1);
    await expect(
      aws.ssm.send(new ListCommandsCommand({ InstanceId: b, MaxResults: 51 })),
    ).rejects.toMatchObject({ name: "ValidationException" });
    await expect(
      aws.ssm.send(
        new ListCommandsCommand({ Filters: [{ key: "InvokedAfter", value: "not a date" }] }),
      ),
    ).rejects.toMatchObject({ name: "InvalidFilterValue" });
  });
});
