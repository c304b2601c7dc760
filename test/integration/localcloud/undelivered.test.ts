import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import {
  CancelCommandCommand,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  SendCommandCommand,
} from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalCloud } from "../../../lib/localcloud/index.js";
import {
  failure,
  fastDelays,
  launch,
  launchOnline,
  startTestCloud,
  stateOf,
  type TestCloud,
  waitFor,
  wrap,
} from "./harness.js";

// SSM accepts a command for a stopped instance and ends it undelivered
// (docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html).

let t: TestCloud;
/** Boots take a minute here, so an instance stays pending for the whole file. */
let slow: TestCloud;

beforeAll(async () => {
  // A delivery timeout long enough to see the invocation Delayed before it ends.
  t = await startTestCloud({ deliveryTimeoutMs: 1_500 });
  slow = await startTestCloud({ bootDelayMs: 60_000 });
});

afterAll(async () => {
  await t.close();
  await slow.close();
});

async function send(cloud: TestCloud, instanceIds: string[], commands: string[]) {
  const out = await cloud.ssm.send(
    new SendCommandCommand({
      DocumentName: "AWS-RunShellScript",
      InstanceIds: instanceIds,
      Parameters: { commands },
    }),
  );
  return out.Command?.CommandId ?? "";
}

/** GetCommandInvocation until `done` says so (InvocationDoesNotExist at first is expected). */
async function poll(
  cloud: TestCloud,
  commandId: string,
  instanceId: string,
  done: (o: GetCommandInvocationCommandOutput) => boolean,
): Promise<GetCommandInvocationCommandOutput> {
  return waitFor(
    async () => {
      const out = await cloud.ssm
        .send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }))
        .catch(() => undefined);
      return out && done(out) ? out : undefined;
    },
    10_000,
    25,
  );
}

const terminal = (o: GetCommandInvocationCommandOutput) =>
  ["Success", "Failed", "TimedOut", "Cancelled"].includes(o.Status ?? "");

async function crashedAfterRegistering(cloud: TestCloud): Promise<string> {
  const id = await launchOnline(cloud);
  expect((await cloud.control("POST", `/instances/${id}/crash`)).status).toBe(200);
  return id;
}

describe("SendCommand to a stopped instance that had registered", () => {
  it("is accepted, waits Delayed, then ends TimedOut / Delivery Timed Out without running", async () => {
    // Prepare
    const id = await crashedAfterRegistering(t);

    // Act
    const commandId = await send(t, [id], ['echo ran > "$WORKSPACE_ROOT/ran.txt"']);

    // Assess
    expect(commandId).toHaveLength(36);
    const waiting = await poll(t, commandId, id, () => true);
    expect(waiting.Status).toBe("Delayed");
    expect(waiting.StatusDetails).toBe("Delayed");
    expect(waiting.ResponseCode).toBe(-1);
    const ended = await poll(t, commandId, id, terminal);
    expect(ended.Status).toBe("TimedOut");
    expect(ended.StatusDetails).toBe("Delivery Timed Out");
    expect(ended.ResponseCode).toBe(-1);
    expect(ended.ExecutionStartDateTime).toBe("");
    expect(ended.StandardOutputContent).toBe("");
    expect(existsSync(join(t.dir, "instances", id, "ran.txt"))).toBe(false);
  });

  it("runs on the Online instances of the same command and leaves the stopped one undelivered", async () => {
    const up = await launchOnline(t);
    const down = await crashedAfterRegistering(t);

    const commandId = await send(t, [up, down], ["echo hello"]);

    const ran = await poll(t, commandId, up, terminal);
    const undelivered = await poll(t, commandId, down, terminal);
    expect(ran.Status).toBe("Success");
    expect(ran.StandardOutputContent).toBe("hello\n");
    expect(undelivered.StatusDetails).toBe("Delivery Timed Out");
  });

  it("is cancelled at once by CancelCommand while it waits", async () => {
    const id = await crashedAfterRegistering(t);
    const commandId = await send(t, [id], ["true"]);
    await poll(t, commandId, id, (o) => o.Status === "Delayed");

    await t.ssm.send(new CancelCommandCommand({ CommandId: commandId }));

    const out = await poll(t, commandId, id, terminal);
    expect(out.Status).toBe("Cancelled");
    expect(out.ResponseCode).toBe(-1);
  });
});

describe("SendCommand still answers InvalidInstanceId", () => {
  it("for a pending instance, and one stopped before it ever registered", async () => {
    const pending = await launch(slow);
    const neverRegistered = await launch(slow);
    await slow.control("POST", `/instances/${neverRegistered}/crash`);

    const pendingErr = await failure(send(slow, [pending], ["true"]));
    const stoppedErr = await failure(send(slow, [neverRegistered], ["true"]));

    expect(await stateOf(slow, pending)).toBe("pending");
    expect(pendingErr.name).toBe("InvalidInstanceId");
    expect(stoppedErr.name).toBe("InvalidInstanceId");
  });

  it("for a terminated instance, and for the whole call when one instance is refused", async () => {
    const gone = await launchOnline(t);
    const up = await launchOnline(t);
    await t.ec2.send(new TerminateInstancesCommand({ InstanceIds: [gone] }));

    const err = await failure(send(t, [up, gone], ["true"]));

    expect(err.name).toBe("InvalidInstanceId");
    expect(err.message).toContain(gone);
    expect(err.message).not.toContain(up);
  });
});

describe("an undelivered invocation across a restart", () => {
  it("keeps waiting on its delivery timeout instead of being reported Terminated", async () => {
    const dir = await mkdtemp(join(tmpdir(), "localcloud-undelivered-"));
    try {
      const first = wrap(
        await startLocalCloud({ port: 0, dir, ...fastDelays, deliveryTimeoutMs: 1_000 }),
        dir,
      );
      const id = await crashedAfterRegistering(first);
      const commandId = await send(first, [id], ["true"]);
      await first.cloud.close();
      first.ssm.destroy();
      first.ec2.destroy();
      first.s3.destroy();

      const second = wrap(await startLocalCloud({ port: 0, dir, ...fastDelays }), dir);
      try {
        const out = await poll(second, commandId, id, terminal);
        expect(out.Status).toBe("TimedOut");
        expect(out.StatusDetails).toBe("Delivery Timed Out");
      } finally {
        second.ssm.destroy();
        second.ec2.destroy();
        second.s3.destroy();
        await second.cloud.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
