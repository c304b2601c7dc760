import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  DescribeVpcsCommand,
  GetConsoleOutputCommand,
  paginateDescribeInstances,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  defaultImageId,
  defaultInstanceProfile,
  defaultSecurityGroupId,
  defaultSubnetId,
} from "../../../lib/localcloud/index.js";
import { failure, launch, startTestCloud, stateOf, type TestCloud, waitFor } from "./harness.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");
/** A second security group the catalogue learns through the `catalogue` option. */
const otherGroupId = "sg-0b1c2d3e4f5a60719";

let t: TestCloud;

beforeAll(async () => {
  // A short visibility window so "terminated, then gone" fits in a test.
  t = await startTestCloud({
    terminatedVisibleMs: 1_000,
    catalogue: { securityGroupIds: [otherGroupId] },
  });
});

afterAll(async () => {
  await t.close();
});

describe("RunInstances", () => {
  it("launches a pending instance that boots to running with everything asked for stored", async () => {
    // Prepare
    const input = {
      ImageId: defaultImageId,
      InstanceType: "t3.small" as const,
      MinCount: 1,
      MaxCount: 1,
      SubnetId: defaultSubnetId,
      SecurityGroupIds: [defaultSecurityGroupId, otherGroupId],
      IamInstanceProfile: { Name: defaultInstanceProfile },
      MetadataOptions: { HttpTokens: "required" as const, HttpPutResponseHopLimit: 2 },
      TagSpecifications: [
        {
          ResourceType: "instance" as const,
          Tags: [
            { Key: "Name", Value: "ws-1" },
            { Key: "workspace", Value: "alpha" },
          ],
        },
      ],
    };

    // Act
    const out = await t.ec2.send(new RunInstancesCommand(input));

    // Assess
    const inst = out.Instances?.[0];
    expect(out.ReservationId).toMatch(/^r-[0-9a-f]{17}$/);
    expect(inst?.InstanceId).toMatch(/^i-[0-9a-f]{17}$/);
    expect(inst?.State).toEqual({ Code: 0, Name: "pending" });
    expect(inst?.InstanceType).toBe("t3.small");
    expect(inst?.SubnetId).toBe(defaultSubnetId);
    expect(inst?.SecurityGroups?.map((g) => g.GroupId)).toEqual([
      defaultSecurityGroupId,
      otherGroupId,
    ]);
    expect(inst?.IamInstanceProfile?.Arn).toBe(
      `arn:aws:iam::123456789012:instance-profile/${defaultInstanceProfile}`,
    );
    expect(inst?.MetadataOptions?.HttpTokens).toBe("required");
    expect(inst?.MetadataOptions?.HttpPutResponseHopLimit).toBe(2);
    expect(inst?.Tags).toEqual([
      { Key: "Name", Value: "ws-1" },
      { Key: "workspace", Value: "alpha" },
    ]);
    expect(inst?.LaunchTime).toBeInstanceOf(Date);
    expect(Math.abs((inst?.LaunchTime?.getTime() ?? 0) - Date.now())).toBeLessThan(5_000);
    const id = inst?.InstanceId ?? "";
    expect(existsSync(join(t.dir, "instances", id))).toBe(true);
    await waitFor(async () => ((await stateOf(t, id)) === "running" ? true : undefined));
    const described = await t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.State).toEqual({
      Code: 16,
      Name: "running",
    });
  });

  it("resolves an SSM parameter image id to a stable AMI id", async () => {
    const a = await launch(t, {
      ImageId: "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    });
    const out = await t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [a] }));
    expect(out.Reservations?.[0]?.Instances?.[0]?.ImageId).toMatch(/^ami-[0-9a-f]{17}$/);
  });

  it("rejects a malformed image id", async () => {
    const err = await failure(launch(t, { ImageId: "not-an-ami" }));
    expect(err.name).toBe("InvalidAMIID.Malformed");
    expect(err.$metadata?.httpStatusCode).toBe(400);
  });

  it("runs the user data at boot in the instance dir, logging it to the console", async () => {
    const script = [
      "#!/bin/sh",
      'echo "hello from user data in $(pwd)"',
      'echo booted > "$WORKSPACE_ROOT/booted.txt"',
    ].join("\n");
    const id = await launch(t, { UserData: b64(script) });
    const dir = join(t.dir, "instances", id);

    const consoleText = await waitFor(async () => {
      const out = await t.ec2.send(new GetConsoleOutputCommand({ InstanceId: id }));
      const text = Buffer.from(out.Output ?? "", "base64").toString("utf8");
      return text.includes("finished at") ? text : undefined;
    });

    expect(consoleText).toContain("Linux version");
    expect(consoleText).toContain(`hello from user data in ${dir}`);
    expect(consoleText).not.toContain("Failed running");
    expect(await readFile(join(dir, "booted.txt"), "utf8")).toBe("booted\n");
  });

  it("logs a failing user-data script to the console and still runs the instance", async () => {
    const id = await launch(t, { UserData: b64("#!/bin/sh\necho about to fail >&2\nexit 7\n") });
    const text = await waitFor(async () => {
      const out = await t.ec2.send(new GetConsoleOutputCommand({ InstanceId: id }));
      const s = Buffer.from(out.Output ?? "", "base64").toString("utf8");
      return s.includes("finished at") ? s : undefined;
    });
    expect(text).toContain("about to fail");
    expect(text).toContain("Failed running /var/lib/cloud/instance/scripts/part-001 [7]");
    expect(await stateOf(t, id)).toBe("running");
  });

  it("refuses user data over 16 KB raw", async () => {
    const err = await failure(launch(t, { UserData: b64("x".repeat(16 * 1024 + 1)) }));
    expect(err.name).toBe("InvalidParameterValue");
    expect(err.message).toContain("16384");
    // Exactly 16 KB is accepted.
    expect(await launch(t, { UserData: b64(`#${"x".repeat(16 * 1024 - 1)}`) })).toMatch(/^i-/);
  });
});

describe("RunInstances idempotency (ClientToken)", () => {
  it("returns the same instance for the same token and parameters, launching nothing new", async () => {
    const first = await launch(t, { ClientToken: "token-same-1" });
    const second = await launch(t, { ClientToken: "token-same-1" });
    const out = await t.ec2.send(
      new DescribeInstancesCommand({
        Filters: [{ Name: "client-token", Values: ["token-same-1"] }],
      }),
    );
    expect(second).toBe(first);
    expect(out.Reservations?.flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId)).toEqual([
      first,
    ]);
  });

  it("answers IdempotentParameterMismatch for the same token with other parameters", async () => {
    await launch(t, { ClientToken: "token-mismatch", InstanceType: "t3.micro" });
    const err = await failure(
      launch(t, { ClientToken: "token-mismatch", InstanceType: "t3.large" }),
    );
    expect(err.name).toBe("IdempotentParameterMismatch");
    expect(err.$metadata?.httpStatusCode).toBe(400);
  });

  it("answers IdempotentInstanceTerminated for the token of a terminated instance", async () => {
    const id = await launch(t, { ClientToken: "token-terminated" });
    await t.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    const err = await failure(launch(t, { ClientToken: "token-terminated" }));
    expect(err.name).toBe("IdempotentInstanceTerminated");
  });

  it("rejects a token longer than 64 characters", async () => {
    expect(await launch(t, { ClientToken: "a".repeat(64) })).toMatch(/^i-/);
    const err = await failure(launch(t, { ClientToken: "a".repeat(65) }));
    expect(err.name).toBe("InvalidParameterValue");
  });
});

describe("DescribeInstances", () => {
  it("fails the whole call naming the one missing id", async () => {
    const known = await launch(t);
    const err = await failure(
      t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [known, "i-0000000000000dead"] })),
    );
    expect(err.name).toBe("InvalidInstanceID.NotFound");
    expect(err.$metadata?.httpStatusCode).toBe(400);
    expect(err.message).toBe("The instance ID 'i-0000000000000dead' does not exist");
  });

  it("names every missing id when several are unknown", async () => {
    const err = await failure(
      t.ec2.send(
        new DescribeInstancesCommand({
          InstanceIds: ["i-0000000000000000a", "i-0000000000000000b"],
        }),
      ),
    );
    expect(err.name).toBe("InvalidInstanceID.NotFound");
    expect(err.message).toBe(
      "The instance IDs 'i-0000000000000000a, i-0000000000000000b' do not exist",
    );
  });

  it("rejects a malformed id", async () => {
    const err = await failure(t.ec2.send(new DescribeInstancesCommand({ InstanceIds: ["i-xyz"] })));
    expect(err.name).toBe("InvalidInstanceID.Malformed");
    expect(err.$metadata?.httpStatusCode).toBe(400);
  });

  it("filters by tag, tag-key, state and instance-id (unknown ids omitted), ORing values and ANDing filters", async () => {
    const a = await launch(t, {
      TagSpecifications: [
        { ResourceType: "instance", Tags: [{ Key: "suite", Value: "filters-a" }] },
      ],
    });
    const b = await launch(t, {
      TagSpecifications: [
        {
          ResourceType: "instance",
          Tags: [
            { Key: "suite", Value: "filters-b" },
            { Key: "only-b", Value: "" },
          ],
        },
      ],
    });
    const ids = async (filters: { Name: string; Values: string[] }[]) => {
      const out = await t.ec2.send(new DescribeInstancesCommand({ Filters: filters }));
      return (out.Reservations ?? [])
        .flatMap((r) => r.Instances ?? [])
        .map((i) => i.InstanceId)
        .sort();
    };

    expect(await ids([{ Name: "tag:suite", Values: ["filters-a", "filters-b"] }])).toEqual(
      [a, b].sort(),
    );
    expect(await ids([{ Name: "tag:suite", Values: ["filters-*"] }])).toEqual([a, b].sort());
    expect(await ids([{ Name: "tag-key", Values: ["only-b"] }])).toEqual([b]);
    expect(
      await ids([
        { Name: "tag:suite", Values: ["filters-a", "filters-b"] },
        { Name: "instance-id", Values: [a, "i-00000000000000001"] },
      ]),
    ).toEqual([a]);
    expect(await ids([{ Name: "instance-id", Values: ["i-00000000000000001"] }])).toEqual([]);
    await waitFor(async () => ((await stateOf(t, b)) === "running" ? true : undefined));
    expect(
      await ids([
        { Name: "tag:suite", Values: ["filters-b"] },
        { Name: "instance-state-name", Values: ["running"] },
      ]),
    ).toEqual([b]);
    expect(
      await ids([
        { Name: "tag:suite", Values: ["filters-b"] },
        { Name: "instance-state-name", Values: ["pending", "stopped"] },
      ]),
    ).toEqual([]);
  });

  it("allows 200 values in a filter and refuses 201 with FilterLimitExceeded", async () => {
    const values = Array.from({ length: 200 }, (_, i) => `i-${i.toString(16).padStart(17, "0")}`);
    const ok = await t.ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: "instance-id", Values: values }] }),
    );
    expect(ok.Reservations).toEqual([]);

    const err = await failure(
      t.ec2.send(
        new DescribeInstancesCommand({
          Filters: [{ Name: "instance-id", Values: [...values, "i-0000000000000ffff"] }],
        }),
      ),
    );
    expect(err.name).toBe("FilterLimitExceeded");
    expect(err.message).toBe(
      "The maximum number of filter values specified on a single call is 200",
    );
  });

  it("pages with MaxResults and NextToken", async () => {
    const launched: string[] = [];
    for (let i = 0; i < 7; i++) {
      launched.push(
        await launch(t, {
          TagSpecifications: [
            { ResourceType: "instance", Tags: [{ Key: "suite", Value: "paging" }] },
          ],
        }),
      );
    }
    const filter = [{ Name: "tag:suite", Values: ["paging"] }];

    const first = await t.ec2.send(
      new DescribeInstancesCommand({ Filters: filter, MaxResults: 5 }),
    );
    const firstIds = (first.Reservations ?? [])
      .flatMap((r) => r.Instances ?? [])
      .map((i) => i.InstanceId);
    expect(firstIds).toEqual(launched.slice(0, 5));
    expect(first.NextToken).toBeTruthy();
    const second = await t.ec2.send(
      new DescribeInstancesCommand({ Filters: filter, MaxResults: 5, NextToken: first.NextToken }),
    );
    const secondIds = (second.Reservations ?? [])
      .flatMap((r) => r.Instances ?? [])
      .map((i) => i.InstanceId);
    expect(secondIds).toEqual(launched.slice(5));
    expect(second.NextToken).toBeUndefined();

    const viaPaginator: string[] = [];
    for await (const page of paginateDescribeInstances(
      { client: t.ec2, pageSize: 5 },
      { Filters: filter },
    )) {
      for (const r of page.Reservations ?? [])
        for (const i of r.Instances ?? []) viaPaginator.push(i.InstanceId ?? "");
    }
    expect(viaPaginator).toEqual(launched);
  });

  it("refuses MaxResults with InstanceIds, and MaxResults outside 5–1000", async () => {
    const id = await launch(t);
    const combo = await failure(
      t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id], MaxResults: 5 })),
    );
    expect(combo.name).toBe("InvalidParameterCombination");
    const small = await failure(t.ec2.send(new DescribeInstancesCommand({ MaxResults: 4 })));
    expect(small.name).toBe("InvalidParameterValue");
    const badToken = await failure(
      t.ec2.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: "garbage!" })),
    );
    expect(badToken.name).toBe("InvalidPaginationToken");
  });
});

describe("TerminateInstances", () => {
  it("terminates none when one id is unknown", async () => {
    const id = await launch(t);
    const err = await failure(
      t.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id, "i-0000000000000beef"] })),
    );
    expect(err.name).toBe("InvalidInstanceID.NotFound");
    expect(err.message).toContain("i-0000000000000beef");
    expect(["pending", "running"]).toContain(await stateOf(t, id));
  });

  it("goes shutting-down then terminated, is idempotent, and disappears after the visibility window", async () => {
    const id = await launch(t);
    await waitFor(async () => ((await stateOf(t, id)) === "running" ? true : undefined));

    const out = await t.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(out.TerminatingInstances).toEqual([
      {
        InstanceId: id,
        CurrentState: { Code: 32, Name: "shutting-down" },
        PreviousState: { Code: 16, Name: "running" },
      },
    ]);
    await waitFor(async () => ((await stateOf(t, id)) === "terminated" ? true : undefined));
    const described = await t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.State).toEqual({
      Code: 48,
      Name: "terminated",
    });
    const again = await t.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    expect(again.TerminatingInstances?.[0]?.PreviousState?.Name).toBe("terminated");
    expect(again.TerminatingInstances?.[0]?.CurrentState?.Name).toBe("terminated");

    const gone = await waitFor(
      async () => {
        const err = await failure(t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })));
        return err.name === "InvalidInstanceID.NotFound" ? err : undefined;
      },
      3_000,
      100,
    );
    expect(gone.message).toContain(id);
    // The disk goes with the instance, removed in the background right after.
    const diskGone = await waitFor(() =>
      existsSync(join(t.dir, "instances", id)) ? undefined : true,
    );
    expect(diskGone).toBe(true);
  });
});

describe("CreateTags and GetConsoleOutput", () => {
  it("adds and overwrites tags", async () => {
    const id = await launch(t, {
      TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "a", Value: "1" }] }],
    });
    await t.ec2.send(
      new CreateTagsCommand({
        Resources: [id],
        Tags: [
          { Key: "a", Value: "2" },
          { Key: "b", Value: "3" },
        ],
      }),
    );
    const out = await t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(out.Reservations?.[0]?.Instances?.[0]?.Tags).toEqual([
      { Key: "a", Value: "2" },
      { Key: "b", Value: "3" },
    ]);
  });

  it("fails CreateTags and GetConsoleOutput on unknown instances", async () => {
    const tagErr = await failure(
      t.ec2.send(
        new CreateTagsCommand({
          Resources: ["i-0000000000000cafe"],
          Tags: [{ Key: "a", Value: "b" }],
        }),
      ),
    );
    expect(tagErr.name).toBe("InvalidInstanceID.NotFound");
    const consoleErr = await failure(
      t.ec2.send(new GetConsoleOutputCommand({ InstanceId: "i-0000000000000cafe" })),
    );
    expect(consoleErr.name).toBe("InvalidInstanceID.NotFound");
  });

  it("answers InvalidAction for an operation it does not implement", async () => {
    const err = await failure(t.ec2.send(new DescribeVpcsCommand({})));
    expect(err.name).toBe("InvalidAction");
    expect(err.$metadata?.httpStatusCode).toBe(400);
  });
});
