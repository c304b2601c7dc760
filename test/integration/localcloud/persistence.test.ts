import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DescribeInstancesCommand } from "@aws-sdk/client-ec2";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  SendCommandCommand,
} from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalCloud } from "../../../lib/localcloud/index.js";
import {
  fastDelays,
  knownKeys,
  launchOnline,
  processAlive,
  type TestCloud,
  waitFor,
  wrap,
} from "./harness.js";

let dir: string;
let current: TestCloud | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "localcloud-persist-"));
});

afterAll(async () => {
  await current?.cloud.close();
  await rm(dir, { recursive: true, force: true });
});

async function start(): Promise<TestCloud> {
  current = wrap(
    await startLocalCloud({
      port: 0,
      dir,
      ...fastDelays,
      credentials: knownKeys,
      buckets: ["persist"],
    }),
    dir,
  );
  return current;
}

/** Close the cloud but keep its dir for the next start. */
async function stop(t: TestCloud): Promise<void> {
  t.ec2.destroy();
  t.ssm.destroy();
  t.s3.destroy();
  await t.cloud.close();
  current = undefined;
}

describe("restart with the same dir", () => {
  it("keeps instances, tags, finished commands and objects; running commands come back Failed/Terminated", async () => {
    // Prepare: a running, tagged instance with a finished and a running command, and an object.
    const first = await start();
    const id = await launchOnline(first, {
      ClientToken: "persist-token",
      TagSpecifications: [
        { ResourceType: "instance", Tags: [{ Key: "workspace", Value: "kept" }] },
      ],
    });
    const finished = await first.ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: [id],
        Parameters: { commands: ['echo done > "$WORKSPACE_ROOT/state.txt"', "echo finished"] },
      }),
    );
    const finishedId = finished.Command?.CommandId ?? "";
    await waitFor(async () => {
      const o = await first.ssm.send(
        new GetCommandInvocationCommand({ CommandId: finishedId, InstanceId: id }),
      );
      return o.Status === "Success" ? o : undefined;
    });
    const running = await first.ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: [id],
        Parameters: { commands: ["sleep 60 &", 'echo $! > "$WORKSPACE_ROOT/long.pid"', "wait"] },
      }),
    );
    const runningId = running.Command?.CommandId ?? "";
    await waitFor(async () => {
      const o = await first.ssm.send(
        new GetCommandInvocationCommand({ CommandId: runningId, InstanceId: id }),
      );
      return o.Status === "InProgress" ? o : undefined;
    });
    const pidFile = join(dir, "instances", id, "long.pid");
    const pid = await waitFor(async () => {
      const text = await readFile(pidFile, "utf8").catch(() => "");
      return text.trim() ? Number(text) : undefined;
    });
    await first.s3.send(new PutObjectCommand({ Bucket: "persist", Key: "obj", Body: "kept" }));

    // Act
    await stop(first);
    const killed = await waitFor(() => (processAlive(pid) ? undefined : true), 2_000);
    const second = await start();

    // Assess
    expect(killed).toBe(true);
    const state = JSON.parse(await readFile(join(dir, "state.json"), "utf8")) as {
      version: number;
    };
    expect(state.version).toBe(1);
    const described = await second.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    const inst = described.Reservations?.[0]?.Instances?.[0];
    expect(inst?.State?.Name).toBe("running");
    expect(inst?.Tags).toEqual([{ Key: "workspace", Value: "kept" }]);
    expect(inst?.ClientToken).toBe("persist-token");
    const info = await second.ssm.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: [id] }] }),
    );
    expect(info.InstanceInformationList?.[0]?.PingStatus).toBe("Online");
    const done = await second.ssm.send(
      new GetCommandInvocationCommand({ CommandId: finishedId, InstanceId: id }),
    );
    expect(done.Status).toBe("Success");
    expect(done.StandardOutputContent).toBe("finished\n");
    const cut = await second.ssm.send(
      new GetCommandInvocationCommand({ CommandId: runningId, InstanceId: id }),
    );
    expect(cut.Status).toBe("Failed");
    expect(cut.StatusDetails).toBe("Terminated");
    expect(cut.ResponseCode).toBe(-1);
    expect(await readFile(join(dir, "instances", id, "state.txt"), "utf8")).toBe("done\n");
    const obj = await second.s3.send(new GetObjectCommand({ Bucket: "persist", Key: "obj" }));
    expect(await obj.Body?.transformToString()).toBe("kept");
    const again = await second.ec2.send(
      new DescribeInstancesCommand({
        Filters: [{ Name: "client-token", Values: ["persist-token"] }],
      }),
    );
    expect(again.Reservations?.[0]?.Instances?.map((i) => i.InstanceId)).toEqual([id]);
    await stop(second);
  });
});
