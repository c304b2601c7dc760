import {
  DescribeInstancesCommand,
  type Instance,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StartInstancesCommand,
  StopInstancesCommand,
} from "@aws-sdk/client-ec2";
import { DescribeInstanceInformationCommand } from "@aws-sdk/client-ssm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { defaultImageId } from "../../../lib/localcloud/index.js";
import { failure, launchOnline, startTestCloud, type TestCloud, waitFor } from "./harness.js";

/**
 * Hibernation as EC2 has it: enabled only at launch and only when the prerequisites hold
 * (docs.aws.amazon.com/AWSEC2/latest/UserGuide/hibernating-prerequisites.html), asked for with
 * StopInstances `Hibernate`, refused for an instance not launched able to
 * (UnsupportedHibernationConfiguration), and recorded as `Client.UserInitiatedHibernate`.
 */

let t: TestCloud;

beforeAll(async () => {
  t = await startTestCloud();
});

afterEach(async () => {
  await t.control("PUT", "/settings", { hibernationFallback: false });
});

afterAll(async () => {
  await t.close();
});

/** What a launch able to hibernate needs: a supported type and an encrypted root volume. */
const hibernating = {
  InstanceType: "t3.small",
  HibernationOptions: { Configured: true },
  BlockDeviceMappings: [{ DeviceName: "/dev/xvda", Ebs: { Encrypted: true, VolumeSize: 8 } }],
} satisfies Partial<RunInstancesCommandInput>;

function run(input: Partial<RunInstancesCommandInput>) {
  return t.ec2.send(
    new RunInstancesCommand({ ImageId: defaultImageId, MinCount: 1, MaxCount: 1, ...input }),
  );
}

async function describeOne(id: string): Promise<Instance> {
  const out = await t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  const inst = out.Reservations?.[0]?.Instances?.[0];
  if (!inst) throw new Error(`${id} not described`);
  return inst;
}

async function waitForState(id: string, state: string): Promise<Instance> {
  return waitFor(async () => {
    const inst = await describeOne(id);
    return inst.State?.Name === state ? inst : undefined;
  });
}

interface ControlView {
  state: string;
  stateReason: string | null;
  hibernationConfigured: boolean;
  hibernated: boolean | null;
}

describe("RunInstances with HibernationOptions", () => {
  it("launches an instance able to hibernate and describes it so", async () => {
    const out = await run(hibernating);

    const id = out.Instances?.[0]?.InstanceId ?? "";
    expect(out.Instances?.[0]?.HibernationOptions).toEqual({ Configured: true });
    expect((await describeOne(id)).HibernationOptions).toEqual({ Configured: true });
    const filtered = await t.ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: "instance-id", Values: [id] },
          { Name: "hibernation-options.configured", Values: ["true"] },
        ],
      }),
    );
    expect(filtered.Reservations?.[0]?.Instances?.map((i) => i.InstanceId)).toEqual([id]);
    const view = await t.control<ControlView>("GET", `/instances/${id}`);
    expect(view.json).toMatchObject({ hibernationConfigured: true, hibernated: null });
  });

  it("describes a plain launch as not configured", async () => {
    const id = await launchOnline(t);
    expect((await describeOne(id)).HibernationOptions).toEqual({ Configured: false });
    const view = await t.control<ControlView>("GET", `/instances/${id}`);
    expect(view.json.hibernationConfigured).toBe(false);
  });

  it("refuses a root volume that is not encrypted, with EC2's code and message", async () => {
    for (const input of [
      { ...hibernating, BlockDeviceMappings: undefined },
      {
        ...hibernating,
        BlockDeviceMappings: [{ DeviceName: "/dev/xvda", Ebs: { Encrypted: false } }],
      },
      // Encrypting a data volume does not encrypt the root volume.
      {
        ...hibernating,
        BlockDeviceMappings: [{ DeviceName: "/dev/sdf", Ebs: { Encrypted: true, VolumeSize: 8 } }],
      },
    ]) {
      const err = await failure(run(input));
      expect(err.name).toBe("UnsupportedHibernationConfiguration");
      expect(err.message).toBe("For hibernation, the root device volume must be encrypted.");
      expect(err.$metadata?.httpStatusCode).toBe(400);
    }
  });

  it("refuses instance types outside the supported families, bare metal and 150 GiB of RAM or more", async () => {
    for (const type of ["m1.small", "t4g.small", "m5.metal", "r5.8xlarge", "c5.24xlarge"]) {
      const err = await failure(
        run({
          ...hibernating,
          InstanceType: type as RunInstancesCommandInput["InstanceType"],
          BlockDeviceMappings: [
            { DeviceName: "/dev/xvda", Ebs: { Encrypted: true, VolumeSize: 1024 } },
          ],
        }),
      );
      expect(err.name, type).toBe("UnsupportedHibernationConfiguration");
    }
    // Just under the limit (144 GiB) is taken.
    const ok = await run({
      ...hibernating,
      InstanceType: "c5.18xlarge",
      BlockDeviceMappings: [{ DeviceName: "/dev/xvda", Ebs: { Encrypted: true, VolumeSize: 200 } }],
    });
    expect(ok.Instances?.[0]?.HibernationOptions?.Configured).toBe(true);
  });

  it("refuses a root volume too small for the RAM or of a type hibernation does not support", async () => {
    const small = await failure(
      run({
        ...hibernating,
        InstanceType: "t3.2xlarge",
        BlockDeviceMappings: [
          { DeviceName: "/dev/xvda", Ebs: { Encrypted: true, VolumeSize: 16 } },
        ],
      }),
    );
    expect(small.name).toBe("UnsupportedHibernationConfiguration");
    expect(small.message).toMatch(/large enough to store the instance's RAM/);
    const magnetic = await failure(
      run({
        ...hibernating,
        BlockDeviceMappings: [
          { DeviceName: "/dev/xvda", Ebs: { Encrypted: true, VolumeType: "st1", VolumeSize: 125 } },
        ],
      }),
    );
    expect(magnetic.name).toBe("UnsupportedHibernationConfiguration");
  });

  it("refuses a root volume smaller than its snapshot, hibernation or not", async () => {
    const err = await failure(
      run({ BlockDeviceMappings: [{ DeviceName: "/dev/xvda", Ebs: { VolumeSize: 4 } }] }),
    );
    expect(err.name).toBe("InvalidBlockDeviceMapping");
    expect(err.message).toMatch(
      /^Volume of size 4GB is smaller than snapshot 'snap-.+', expect size >= 8GB$/,
    );
  });
});

describe("StopInstances with Hibernate", () => {
  it("refuses an instance not launched able to hibernate and stops none of the batch", async () => {
    const able = (await run(hibernating)).Instances?.[0]?.InstanceId ?? "";
    const plain = await launchOnline(t);
    await waitForState(able, "running");

    const err = await failure(
      t.ec2.send(new StopInstancesCommand({ InstanceIds: [able, plain], Hibernate: true })),
    );

    expect(err.name).toBe("UnsupportedHibernationConfiguration");
    expect(err.message).toBe(
      `The instance can't be hibernated because it was not configured at launch for hibernation: ${plain}`,
    );
    expect((await describeOne(able)).State?.Name).toBe("running");
    expect((await describeOne(plain)).State?.Name).toBe("running");
  });

  it("hibernates an instance launched able to, records it, and starts it again", async () => {
    const id = (await run(hibernating)).Instances?.[0]?.InstanceId ?? "";
    await waitForState(id, "running");

    const out = await t.ec2.send(new StopInstancesCommand({ InstanceIds: [id], Hibernate: true }));

    expect(out.StoppingInstances?.[0]?.CurrentState).toEqual({ Code: 64, Name: "stopping" });
    const stopped = await waitForState(id, "stopped");
    expect(stopped.StateReason).toEqual({
      Code: "Client.UserInitiatedHibernate",
      Message: "Client.UserInitiatedHibernate: User initiated hibernate",
    });
    const view = await t.control<ControlView>("GET", `/instances/${id}`);
    expect(view.json).toMatchObject({
      state: "stopped",
      stateReason: "Client.UserInitiatedHibernate",
      hibernationConfigured: true,
      hibernated: true,
    });
    const list = await t.control<{ instances: (ControlView & { id: string })[] }>(
      "GET",
      "/instances",
    );
    expect(list.json.instances.find((i) => i.id === id)).toMatchObject({
      hibernationConfigured: true,
      hibernated: true,
    });

    await t.ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
    const running = await waitForState(id, "running");
    expect(running.StateReason).toBeUndefined();
    expect((await t.control<ControlView>("GET", `/instances/${id}`)).json.hibernated).toBeNull();
    await waitFor(async () => {
      const info = await t.ssm.send(
        new DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: [id] }] }),
      );
      return info.InstanceInformationList?.[0]?.PingStatus === "Online" ? true : undefined;
    });
  });

  it("stops plainly when hibernation cannot complete, and says so", async () => {
    const id = (await run(hibernating)).Instances?.[0]?.InstanceId ?? "";
    await waitForState(id, "running");
    await t.control("PUT", "/settings", { hibernationFallback: true });

    await t.ec2.send(new StopInstancesCommand({ InstanceIds: [id], Hibernate: true }));

    const stopped = await waitForState(id, "stopped");
    expect(stopped.StateReason?.Code).toBe("Client.UserInitiatedShutdown");
    const view = await t.control<ControlView>("GET", `/instances/${id}`);
    expect(view.json).toMatchObject({ hibernationConfigured: true, hibernated: false });
  });

  it("stops an instance able to hibernate plainly when Hibernate is not asked for", async () => {
    const id = (await run(hibernating)).Instances?.[0]?.InstanceId ?? "";
    await waitForState(id, "running");
    await t.ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
    const stopped = await waitForState(id, "stopped");
    expect(stopped.StateReason?.Code).toBe("Client.UserInitiatedShutdown");
    expect((await t.control<ControlView>("GET", `/instances/${id}`)).json.hibernated).toBe(false);
  });
});
