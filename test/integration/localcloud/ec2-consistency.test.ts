import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  GetConsoleOutputCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { failure, launch, startTestCloud, stateOf, type TestCloud, waitFor } from "./harness.js";

// Right after RunInstances, EC2's other calls may not know the new instance yet
// (docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).

/** Long enough that nothing in a test outlives it by accident. */
const longLag = 600_000;

let t: TestCloud;

beforeAll(async () => {
  t = await startTestCloud();
});

afterEach(async () => {
  await setLag(0);
});

afterAll(async () => {
  await t.close();
});

async function setLag(ms: number): Promise<{ status: number; json: { describeLagMs: number } }> {
  return t.control<{ describeLagMs: number }>("PUT", "/settings", { describeLagMs: ms });
}

const listed = async (filters: { Name: string; Values: string[] }[]) => {
  const out = await t.ec2.send(new DescribeInstancesCommand({ Filters: filters }));
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId);
};

interface View {
  state: string;
  tags: Record<string, string>;
  describable: boolean;
}

describe("describeLagMs", () => {
  it("keeps a new instance out of DescribeInstances: omitted by filters, NotFound by id", async () => {
    // Prepare
    await setLag(longLag);

    // Act
    const id = await launch(t, {
      ClientToken: "lagging",
      TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "suite", Value: "lag" }] }],
    });

    // Assess
    const byId = await failure(t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })));
    expect(byId.name).toBe("InvalidInstanceID.NotFound");
    expect(byId.message).toBe(`The instance ID '${id}' does not exist`);
    expect(await listed([{ Name: "instance-id", Values: [id] }])).toEqual([]);
    expect(await listed([{ Name: "tag:suite", Values: ["lag"] }])).toEqual([]);
    expect(await listed([{ Name: "client-token", Values: ["lagging"] }])).toEqual([]);
    // The instance exists all the same: it boots, and the control API sees it.
    const view = await waitFor(async () => {
      const v = (await t.control<View>("GET", `/instances/${id}`)).json;
      return v.state === "running" ? v : undefined;
    });
    expect(view.describable).toBe(false);
  });

  it("TerminateInstances, GetConsoleOutput and CreateTags answer NotFound and change nothing", async () => {
    await setLag(longLag);
    const id = await launch(t);

    const terminate = await failure(
      t.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] })),
    );
    const consoleErr = await failure(t.ec2.send(new GetConsoleOutputCommand({ InstanceId: id })));
    const tag = await failure(
      t.ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: "k", Value: "v" }] })),
    );

    expect(terminate.name).toBe("InvalidInstanceID.NotFound");
    expect(consoleErr.name).toBe("InvalidInstanceID.NotFound");
    expect(tag.name).toBe("InvalidInstanceID.NotFound");
    // "If you get an InvalidInstanceID.NotFound error after running TerminateInstances, this
    // doesn't mean the instance was or will be terminated."
    const view = (await t.control<View>("GET", `/instances/${id}`)).json;
    expect(["pending", "running"]).toContain(view.state);
    expect(view.tags).toEqual({});
  });

  it("still answers a RunInstances retry with the same ClientToken with the same instance", async () => {
    await setLag(longLag);

    const first = await launch(t, { ClientToken: "lagging-retry" });
    const again = await launch(t, { ClientToken: "lagging-retry" });

    expect(again).toBe(first);
  });

  it("ends: the instance appears once its lag is over", async () => {
    await setLag(200);
    const id = await launch(t);

    const state = await waitFor(() => stateOf(t, id).catch(() => undefined));

    expect(["pending", "running"]).toContain(state);
    expect((await t.control<View>("GET", `/instances/${id}`)).json.describable).toBe(true);
  });

  it("applies to launches after a change, not to instances already visible", async () => {
    const before = await launch(t);

    await setLag(longLag);

    expect(await stateOf(t, before)).toBeDefined();
  });
});

describe("settings API", () => {
  it("reads and writes describeLagMs, refusing anything else", async () => {
    expect((await t.control("GET", "/settings")).json).toEqual({
      describeLagMs: 0,
      hibernationFallback: false,
    });
    const set = await setLag(1234);
    expect(set.status).toBe(200);
    expect(set.json).toEqual({
      describeLagMs: 1234,
      hibernationFallback: false,
    });
    expect((await t.control("GET", "/settings")).json).toEqual({
      describeLagMs: 1234,
      hibernationFallback: false,
    });

    expect((await t.control("PUT", "/settings", { describeLagMs: -1 })).status).toBe(400);
    expect((await t.control("PUT", "/settings", { describeLagMs: 1.5 })).status).toBe(400);
    expect((await t.control("PUT", "/settings", { bootDelayMs: 5 })).status).toBe(400);
    expect((await t.control("GET", "/settings")).json).toEqual({
      describeLagMs: 1234,
      hibernationFallback: false,
    });
  });
});

describe("describeLagMs as a start option", () => {
  it("lags from the first launch", async () => {
    const lagged = await startTestCloud({ describeLagMs: longLag });
    try {
      const id = await launch(lagged);
      const err = await failure(
        lagged.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })),
      );
      expect(err.name).toBe("InvalidInstanceID.NotFound");
      expect((await lagged.control("GET", "/settings")).json).toEqual({
        describeLagMs: longLag,
        hibernationFallback: false,
      });
    } finally {
      await lagged.close();
    }
  });
});
