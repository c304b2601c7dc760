import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { failure, launch, startTestCloud, type TestCloud } from "./harness.js";

// DescribeInstances filters as EC2 applies them, beyond plain value matching.

let t: TestCloud;
let tagged: string;
let tokened: string;
let plain: string;

beforeAll(async () => {
  t = await startTestCloud();
  tagged = await launch(t, {
    TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "filters-suite", Value: "x" }] }],
  });
  tokened = await launch(t, { ClientToken: "filters-token" });
  // No ClientToken of its own: the SDK fills one in unless the call sends an empty one.
  plain = await launch(t, { ClientToken: "" });
});

afterAll(async () => {
  await t.close();
});

const listed = async (filters: { Name: string; Values?: string[] }[]) => {
  const out = await t.ec2.send(new DescribeInstancesCommand({ Filters: filters }));
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId);
};

/** Well-formed ids the cloud never issued. */
const unknownIds = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => `i-${(from + i).toString(16).padStart(17, "0")}`);

describe("a filter with an empty Values list (aws/aws-cli#1735)", () => {
  it("instance-id with [] lists every instance", async () => {
    const all = await listed([{ Name: "instance-id", Values: [] }]);

    expect(all).toEqual(expect.arrayContaining([tagged, tokened, plain]));
    expect(all).toHaveLength(3);
  });

  it("tag:KEY with [] lists the instances that have the tag, whatever its value", async () => {
    expect(await listed([{ Name: "tag:filters-suite", Values: [] }])).toEqual([tagged]);
    expect(await listed([{ Name: "tag:nobody-has-this", Values: [] }])).toEqual([]);
  });

  it("client-token with [] lists only instances launched with a token", async () => {
    const withToken = await listed([{ Name: "client-token", Values: [] }]);

    expect(withToken).toContain(tokened);
    expect(withToken).not.toContain(plain);
  });

  it("a filter without Values at all behaves the same, and ANDs with the others", async () => {
    expect(
      await listed([{ Name: "instance-id" }, { Name: "tag:filters-suite", Values: ["x"] }]),
    ).toEqual([tagged]);
  });
});

describe("FilterLimitExceeded counts the values of all filters of a call", () => {
  it("accepts 200 values over two filters", async () => {
    const out = await listed([
      { Name: "instance-id", Values: unknownIds(199) },
      { Name: "instance-state-name", Values: ["running"] },
    ]);

    expect(out).toEqual([]);
  });

  it("refuses 201 values over two filters, though each is under 200", async () => {
    const err = await failure(
      listed([
        { Name: "instance-id", Values: unknownIds(101) },
        { Name: "tag:filters-suite", Values: unknownIds(100, 500) },
      ]),
    );

    expect(err.name).toBe("FilterLimitExceeded");
    expect(err.$metadata?.httpStatusCode).toBe(400);
    expect(err.message).toBe(
      "The maximum number of filter values specified on a single call is 200",
    );
  });

  it("refuses 200 instance ids plus one more value elsewhere", async () => {
    const err = await failure(
      listed([
        { Name: "instance-id", Values: unknownIds(200) },
        { Name: "instance-state-name", Values: ["running"] },
      ]),
    );

    expect(err.name).toBe("FilterLimitExceeded");
  });
});
