import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DescribeInstancesCommand,
  type Instance,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  SendCommandCommand,
} from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  defaultImageId,
  type LocalCloudOptions,
  startLocalCloud,
} from "../../../lib/localcloud/index.js";
import {
  failure,
  fastDelays,
  knownKeys,
  launchOnline,
  type TestCloud,
  waitFor,
  wrap,
} from "./harness.js";

/**
 * Stopped, stopping and starting instances survive a restart of the cloud in their state: the
 * state file keeps each record whole, with its due time, stop mode and what SSM knew.
 */

let dir: string;
let current: TestCloud | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "localcloud-lifecycle-"));
});

afterAll(async () => {
  await current?.cloud.close();
  await rm(dir, { recursive: true, force: true });
});

async function start(opts: Partial<LocalCloudOptions> = {}): Promise<TestCloud> {
  current = wrap(
    await startLocalCloud({
      port: 0,
      dir,
      ...fastDelays,
      // Long enough for a command sent to a stopped instance to outlive two restarts.
      deliveryTimeoutMs: 60_000,
      credentials: knownKeys,
      ...opts,
    }),
    dir,
  );
  return current;
}

/** Close the cloud but keep its dir for the next start. */
async function close(t: TestCloud): Promise<void> {
  t.ec2.destroy();
  t.ssm.destroy();
  t.s3.destroy();
  await t.cloud.close();
  current = undefined;
}

async function describeOne(t: TestCloud, id: string): Promise<Instance> {
  const out = await t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  const inst = out.Reservations?.[0]?.Instances?.[0];
  if (!inst) throw new Error(`${id} not described`);
  return inst;
}

// Generous: boots and stops are timers that a loaded machine runs late.
const WAIT_MS = 45_000;

async function waitForState(t: TestCloud, id: string, state: string): Promise<Instance> {
  return waitFor(async () => {
    const inst = await describeOne(t, id);
    return inst.State?.Name === state ? inst : undefined;
  }, WAIT_MS);
}

async function listed(t: TestCloud, id: string): Promise<string | undefined> {
  const out = await t.ssm.send(
    new DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: [id] }] }),
  );
  return out.InstanceInformationList?.[0]?.PingStatus;
}

describe("restart with stopped, stopping and starting instances", () => {
  it("keeps each in its state and carries its transition through", async () => {
    // Prepare: a hibernated instance, a stopped one with user data and a command waiting for
    // it, and a running one.
    const first = await start();
    const launched = await first.ec2.send(
      new RunInstancesCommand({
        ImageId: defaultImageId,
        InstanceType: "t3.micro",
        MinCount: 1,
        MaxCount: 1,
        HibernationOptions: { Configured: true },
        BlockDeviceMappings: [{ DeviceName: "/dev/xvda", Ebs: { Encrypted: true } }],
      }),
    );
    const hibernated = launched.Instances?.[0]?.InstanceId ?? "";
    const userData = 'echo boot >> "$WORKSPACE_ROOT/boots.txt"\n';
    const stopped = await launchOnline(first, {
      UserData: Buffer.from(userData).toString("base64"),
    });
    const running = await launchOnline(first);
    await waitForState(first, hibernated, "running");
    const boots = join(dir, "instances", stopped, "boots.txt");
    await waitFor(
      async () => ((await readFile(boots, "utf8").catch(() => "")) ? true : undefined),
      WAIT_MS,
    );
    await first.ec2.send(new StopInstancesCommand({ InstanceIds: [hibernated], Hibernate: true }));
    await first.ec2.send(new StopInstancesCommand({ InstanceIds: [stopped] }));
    await waitForState(first, hibernated, "stopped");
    await waitForState(first, stopped, "stopped");
    const waiting = await first.ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: [stopped],
        Parameters: { commands: ["echo ran after the restarts"] },
      }),
    );
    const waitingId = waiting.Command?.CommandId ?? "";
    await close(first);

    // Act 1: a restart with minute-long boots. The hibernated one is still hibernated; started,
    // it is pending, cannot be stopped, and SSM does not list it yet.
    const second = await start({ bootDelayMs: 60_000 });
    const kept = await describeOne(second, hibernated);
    expect(kept.State?.Name).toBe("stopped");
    expect(kept.StateReason?.Code).toBe("Client.UserInitiatedHibernate");
    expect(kept.HibernationOptions?.Configured).toBe(true);
    const view = await second.control<{ hibernated: boolean | null }>(
      "GET",
      `/instances/${hibernated}`,
    );
    expect(view.json.hibernated).toBe(true);
    expect(await listed(second, hibernated)).toBeUndefined();
    await second.ec2.send(new StartInstancesCommand({ InstanceIds: [hibernated] }));
    expect((await describeOne(second, hibernated)).State?.Name).toBe("pending");
    const err = await failure(
      second.ec2.send(new StopInstancesCommand({ InstanceIds: [hibernated] })),
    );
    expect(err.name).toBe("IncorrectInstanceState");
    expect(err.message).toBe(
      `This instance '${hibernated}' is not in a state from which it can be stopped.`,
    );
    expect(await listed(second, hibernated)).toBeUndefined();
    await close(second);

    // Act 2: a restart that leaves a start and a stop half done.
    const third = await start({ bootDelayMs: 500, stopDelayMs: 500 });
    await third.ec2.send(new StartInstancesCommand({ InstanceIds: [stopped] }));
    await third.ec2.send(new StopInstancesCommand({ InstanceIds: [running] }));
    await close(third);

    // Assess: the next cloud finishes both; user data did not run again, and the command sent
    // while the instance was stopped ran once its agent was back.
    const fourth = await start();
    const stoppedNow = await waitForState(fourth, running, "stopped");
    expect(stoppedNow.StateReason?.Code).toBe("Client.UserInitiatedShutdown");
    await waitForState(fourth, stopped, "running");
    await waitFor(
      async () => ((await listed(fourth, stopped)) === "Online" ? true : undefined),
      WAIT_MS,
    );
    expect(await readFile(boots, "utf8")).toBe("boot\n");
    const out = await waitFor(async () => {
      const o = await fourth.ssm.send(
        new GetCommandInvocationCommand({ CommandId: waitingId, InstanceId: stopped }),
      );
      // An end other than Success is a failure to see now, with its status.
      return o.Status === "Pending" || o.Status === "InProgress" || o.Status === "Delayed"
        ? undefined
        : o;
    }, WAIT_MS);
    expect([out.Status, out.StatusDetails]).toEqual(["Success", "Success"]);
    expect(out.StandardOutputContent).toBe("ran after the restarts\n");
  });
});
