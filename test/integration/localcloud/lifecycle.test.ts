import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  DescribeInstancesCommand,
  GetConsoleOutputCommand,
  type Instance,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  SendCommandCommand,
} from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  failure,
  launch,
  launchOnline,
  processAlive,
  startTestCloud,
  type TestCloud,
  waitFor,
} from "./harness.js";

/**
 * Stop and start as EC2 runs them (API_StopInstances.html, API_StartInstances.html,
 * ec2-instance-lifecycle.html): running → stopping (64) → stopped (80), stopped → pending (0) →
 * running (16); the disk stays, processes die, user data does not run again, and SSM forgets
 * the agent until it registers again (aws/amazon-ssm-agent#407).
 */

let t: TestCloud;
/** Stops that take a minute: "stopping" holds still for a test. */
let slowStop: TestCloud;
/** Boots that take a minute: "pending" holds still for a test. */
let slowBoot: TestCloud;

beforeAll(async () => {
  // Delivery waits long enough for a stopped instance to be started again.
  [t, slowStop, slowBoot] = await Promise.all([
    startTestCloud({ deliveryTimeoutMs: 20_000 }),
    startTestCloud({ stopDelayMs: 60_000 }),
    startTestCloud({ bootDelayMs: 60_000 }),
  ]);
});

afterAll(async () => {
  await Promise.all([t.close(), slowStop.close(), slowBoot.close()]);
});

async function describeOne(cloud: TestCloud, id: string): Promise<Instance> {
  const out = await cloud.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  const inst = out.Reservations?.[0]?.Instances?.[0];
  if (!inst) throw new Error(`${id} not described`);
  return inst;
}

async function waitForState(cloud: TestCloud, id: string, state: string): Promise<Instance> {
  return waitFor(async () => {
    const inst = await describeOne(cloud, id);
    return inst.State?.Name === state ? inst : undefined;
  });
}

async function pingStatus(cloud: TestCloud, id: string): Promise<string | undefined> {
  const out = await cloud.ssm.send(
    new DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: [id] }] }),
  );
  return out.InstanceInformationList?.[0]?.PingStatus;
}

async function send(cloud: TestCloud, id: string, commands: string[]): Promise<string> {
  const out = await cloud.ssm.send(
    new SendCommandCommand({
      DocumentName: "AWS-RunShellScript",
      InstanceIds: [id],
      Parameters: { commands },
    }),
  );
  return out.Command?.CommandId ?? "";
}

async function invocation(
  cloud: TestCloud,
  commandId: string,
  id: string,
): Promise<GetCommandInvocationCommandOutput> {
  return waitFor(() =>
    cloud.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id })),
  );
}

const terminal = new Set(["Success", "Failed", "TimedOut", "Cancelled"]);

async function finished(
  cloud: TestCloud,
  commandId: string,
  id: string,
): Promise<GetCommandInvocationCommandOutput> {
  return waitFor(async () => {
    const out = await invocation(cloud, commandId, id);
    return terminal.has(out.Status ?? "") ? out : undefined;
  }, 10_000);
}

describe("StopInstances", () => {
  it("answers stopping/running, then the instance is stopped with the user's reason", async () => {
    const id = await launchOnline(t);

    const out = await t.ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));

    expect(out.StoppingInstances).toEqual([
      {
        InstanceId: id,
        CurrentState: { Code: 64, Name: "stopping" },
        PreviousState: { Code: 16, Name: "running" },
      },
    ]);
    const stopped = await waitForState(t, id, "stopped");
    expect(stopped.State).toEqual({ Code: 80, Name: "stopped" });
    expect(stopped.StateReason).toEqual({
      Code: "Client.UserInitiatedShutdown",
      Message: "Client.UserInitiatedShutdown: User initiated shutdown",
    });
    expect(stopped.StateTransitionReason).toMatch(
      /^User initiated \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT\)$/,
    );
    // A stopped instance keeps its private address.
    expect(stopped.PrivateIpAddress).toMatch(/^10\.0\.\d+\.\d+$/);
  });

  it("answers a stopping or stopped instance with its state unchanged", async () => {
    const id = await launchOnline(slowStop);
    await slowStop.ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));

    const again = await slowStop.ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));

    expect(again.StoppingInstances?.[0]).toMatchObject({
      CurrentState: { Code: 64, Name: "stopping" },
      PreviousState: { Code: 64, Name: "stopping" },
    });
    expect((await describeOne(slowStop, id)).State?.Name).toBe("stopping");

    const other = await launchOnline(t);
    await t.ec2.send(new StopInstancesCommand({ InstanceIds: [other] }));
    await waitForState(t, other, "stopped");
    const repeated = await t.ec2.send(new StopInstancesCommand({ InstanceIds: [other] }));
    expect(repeated.StoppingInstances?.[0]).toMatchObject({
      CurrentState: { Code: 80, Name: "stopped" },
      PreviousState: { Code: 80, Name: "stopped" },
    });
  });

  it("refuses a pending instance that never ran, and a terminated one, and stops none of the batch", async () => {
    const pending = await launch(slowBoot);
    const err = await failure(
      slowBoot.ec2.send(new StopInstancesCommand({ InstanceIds: [pending] })),
    );
    expect(err.name).toBe("IncorrectInstanceState");
    expect(err.message).toBe(
      `Instance '${pending}' cannot be stopped as it has never reached the 'running' state.`,
    );
    expect(err.$metadata?.httpStatusCode).toBe(400);

    const running = await launchOnline(t);
    const gone = await launchOnline(t);
    await t.ec2.send(new TerminateInstancesCommand({ InstanceIds: [gone] }));
    await waitForState(t, gone, "terminated");
    const batch = await failure(
      t.ec2.send(new StopInstancesCommand({ InstanceIds: [running, gone] })),
    );
    expect(batch.name).toBe("IncorrectInstanceState");
    expect(batch.message).toBe(
      `This instance '${gone}' is not in a state from which it can be stopped.`,
    );
    expect((await describeOne(t, running)).State?.Name).toBe("running");
  });

  it("answers InvalidInstanceID.NotFound for an unknown id and MissingParameter for none", async () => {
    const unknown = await failure(
      t.ec2.send(new StopInstancesCommand({ InstanceIds: ["i-0123456789abcdef0"] })),
    );
    expect(unknown.name).toBe("InvalidInstanceID.NotFound");
    const none = await failure(t.ec2.send(new StopInstancesCommand({ InstanceIds: [] })));
    expect(none.name).toBe("MissingParameter");
  });

  it("kills the instance's commands and processes, ends their invocations Failed, and keeps its disk", async () => {
    const id = await launchOnline(t);
    const commandId = await send(t, id, [
      'echo kept > "$WORKSPACE_ROOT/kept.txt"',
      "sleep 300 &",
      'echo $! > "$WORKSPACE_ROOT/child.pid"',
      "wait",
    ]);
    const pidFile = join(t.dir, "instances", id, "child.pid");
    const pid = await waitFor(async () => {
      const n = Number(await readFile(pidFile, "utf8").catch(() => ""));
      return n > 0 ? n : undefined;
    });
    expect(processAlive(pid)).toBe(true);

    await t.ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));

    const out = await finished(t, commandId, id);
    // As for a crash: the agent died with the machine and reported nothing.
    expect(out).toMatchObject({ Status: "Failed", StatusDetails: "Terminated", ResponseCode: -1 });
    expect(out.StandardOutputContent).toBe("");
    await waitFor(() => (processAlive(pid) ? undefined : true), 2_000);
    await waitForState(t, id, "stopped");
    expect(await readFile(join(t.dir, "instances", id, "kept.txt"), "utf8")).toBe("kept\n");
  });

  it("takes Force and stops as without it", async () => {
    const id = await launchOnline(t);
    const out = await t.ec2.send(new StopInstancesCommand({ InstanceIds: [id], Force: true }));
    expect(out.StoppingInstances?.[0]?.CurrentState?.Name).toBe("stopping");
    await waitForState(t, id, "stopped");
  });
});

describe("SSM while stopped", () => {
  it("no longer lists the agent once stopped, and lists it Online again after a start", async () => {
    const id = await launchOnline(t);
    expect(await pingStatus(t, id)).toBe("Online");

    await t.ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));

    // SSM's view (AWS in aws/amazon-ssm-agent#407): a stopped instance is not listed at all.
    expect(await pingStatus(t, id)).toBeUndefined();
    await waitForState(t, id, "stopped");
    expect(await pingStatus(t, id)).toBeUndefined();
    const control = await t.control<{ ssmPingStatus: string | null }>("GET", `/instances/${id}`);
    expect(control.json.ssmPingStatus).toBeNull();

    await t.ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
    await waitFor(async () => ((await pingStatus(t, id)) === "Online" ? true : undefined));
  });

  it("takes a command for the stopped instance and runs it once the agent is back", async () => {
    const id = await launchOnline(t);
    await t.ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
    await waitForState(t, id, "stopped");

    const commandId = await send(t, id, ["echo delivered after start"]);

    expect((await invocation(t, commandId, id)).Status).toBe("Delayed");
    await t.ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
    const out = await finished(t, commandId, id);
    expect(out).toMatchObject({
      Status: "Success",
      ResponseCode: 0,
      StandardOutputContent: "delivered after start\n",
    });
  });

  it("keeps refusing a command for an instance whose agent never registered", async () => {
    const pending = await launch(slowBoot);
    const err = await failure(send(slowBoot, pending, ["true"]));
    expect(err.name).toBe("InvalidInstanceId");
  });
});

describe("StartInstances", () => {
  it("answers pending/stopped, boots again with the same disk, and does not run user data again", async () => {
    const userData = 'echo boot >> "$WORKSPACE_ROOT/boots.txt"\n';
    const id = await launchOnline(t, { UserData: Buffer.from(userData).toString("base64") });
    const boots = join(t.dir, "instances", id, "boots.txt");
    await waitFor(async () => ((await readFile(boots, "utf8").catch(() => "")) ? true : undefined));
    const before = await describeOne(t, id);
    await t.ec2.send(new StopInstancesCommand({ InstanceIds: [id] }));
    await waitForState(t, id, "stopped");

    const out = await t.ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));

    expect(out.StartingInstances).toEqual([
      {
        InstanceId: id,
        CurrentState: { Code: 0, Name: "pending" },
        PreviousState: { Code: 80, Name: "stopped" },
      },
    ]);
    const running = await waitForState(t, id, "running");
    expect(running.StateReason).toBeUndefined();
    expect(running.StateTransitionReason ?? "").toBe("");
    expect(running.PrivateIpAddress).toBe(before.PrivateIpAddress);
    // LaunchTime is "the time that the instance was last launched" (API_Instance.html).
    expect(running.LaunchTime?.getTime()).toBeGreaterThan(before.LaunchTime?.getTime() ?? 0);
    await waitFor(async () => ((await pingStatus(t, id)) === "Online" ? true : undefined));
    // cloud-init runs user data once per instance: one line, from the first boot.
    expect(await readFile(boots, "utf8")).toBe("boot\n");
    const console = await t.ec2.send(new GetConsoleOutputCommand({ InstanceId: id }));
    const text = Buffer.from(console.Output ?? "", "base64").toString("utf8");
    expect(text.split(`instance ${id} booted`).length - 1).toBe(2);
    expect(existsSync(join(t.dir, "instances", id))).toBe(true);
  });

  it("answers a running instance with its state unchanged", async () => {
    const id = await launchOnline(t);
    const out = await t.ec2.send(new StartInstancesCommand({ InstanceIds: [id] }));
    expect(out.StartingInstances?.[0]).toMatchObject({
      CurrentState: { Code: 16, Name: "running" },
      PreviousState: { Code: 16, Name: "running" },
    });
  });

  it("refuses a terminated, a shutting-down and a stopping instance with IncorrectInstanceState", async () => {
    const gone = await launchOnline(t);
    await t.ec2.send(new TerminateInstancesCommand({ InstanceIds: [gone] }));
    const shuttingDown = await failure(
      t.ec2.send(new StartInstancesCommand({ InstanceIds: [gone] })),
    );
    expect(shuttingDown.name).toBe("IncorrectInstanceState");
    await waitForState(t, gone, "terminated");
    const terminated = await failure(
      t.ec2.send(new StartInstancesCommand({ InstanceIds: [gone] })),
    );
    expect(terminated.name).toBe("IncorrectInstanceState");
    expect(terminated.message).toBe(
      `The instance '${gone}' is not in a state from which it can be started.`,
    );

    const stopping = await launchOnline(slowStop);
    await slowStop.ec2.send(new StopInstancesCommand({ InstanceIds: [stopping] }));
    const err = await failure(
      slowStop.ec2.send(new StartInstancesCommand({ InstanceIds: [stopping] })),
    );
    expect(err.name).toBe("IncorrectInstanceState");
  });
});
