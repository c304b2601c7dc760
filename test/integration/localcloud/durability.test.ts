import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  SendCommandCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { defaultImageId } from "../../../lib/localcloud/index.js";
import { credentials, waitFor } from "./harness.js";

// The local cloud as its own process (`npm run localcloud`), killed with SIGKILL the moment an
// answer arrives: whatever it answered must be known after a restart on the same dir.

const root = resolve(import.meta.dirname, "../../..");
let dir: string;
let current: Running | undefined;

interface Running {
  child: ChildProcess;
  ec2: EC2Client;
  ssm: SSMClient;
  url: string;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "localcloud-durable-"));
});

afterEach(async () => {
  if (current) await kill(current);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Start `lib/localcloud/main.ts` on an ephemeral port over `dir`; resolves once it listens. */
async function start(): Promise<Running> {
  const child = spawn(process.execPath, ["--import", "tsx", "lib/localcloud/main.ts"], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LOCALCLOUD_PORT: "0", LOCALCLOUD_DIR: dir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const url = await new Promise<string>((ok, fail) => {
    let out = "";
    let err = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) ok(m[1]);
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString("utf8");
    });
    child.once("exit", (code) => fail(new Error(`localcloud exited (${code}): ${err}`)));
  });
  const config = { region: "us-east-1", endpoint: url, credentials, maxAttempts: 1 };
  current = { child, url, ec2: new EC2Client(config), ssm: new SSMClient(config) };
  return current;
}

/** SIGKILL: no shutdown handler runs, nothing is saved on the way out. */
async function kill(r: Running): Promise<void> {
  r.ec2.destroy();
  r.ssm.destroy();
  if (r.child.exitCode === null && r.child.signalCode === null) {
    const exited = new Promise((ok) => r.child.once("exit", ok));
    r.child.kill("SIGKILL");
    await exited;
  }
  current = undefined;
}

async function describe1(r: Running, id: string) {
  const out = await r.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  return out.Reservations?.[0]?.Instances?.[0];
}

describe("kill -9 right after an answer, then restart on the same dir", () => {
  it("knows the instance RunInstances answered with, and its ClientToken", async () => {
    // Prepare
    const first = await start();
    const out = await first.ec2.send(
      new RunInstancesCommand({
        ImageId: defaultImageId,
        MinCount: 1,
        MaxCount: 1,
        ClientToken: "durable-token",
      }),
    );
    const id = out.Instances?.[0]?.InstanceId ?? "";

    // Act
    await kill(first);
    const second = await start();

    // Assess
    expect((await describe1(second, id))?.InstanceId).toBe(id);
    const again = await second.ec2.send(
      new RunInstancesCommand({
        ImageId: defaultImageId,
        MinCount: 1,
        MaxCount: 1,
        ClientToken: "durable-token",
      }),
    );
    expect(again.Instances?.map((i) => i.InstanceId)).toEqual([id]);
  }, 30_000);

  it("knows tags, a crash through the control API, a termination and a sent command", async () => {
    // Prepare: two running, registered instances.
    const first = await start();
    const launched = await first.ec2.send(
      new RunInstancesCommand({ ImageId: defaultImageId, MinCount: 2, MaxCount: 2 }),
    );
    const [a = "", b = ""] = launched.Instances?.map((i) => i.InstanceId ?? "") ?? [];
    await waitFor(async () => {
      const info = await first.ssm.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: "InstanceIds", Values: [a] }],
        }),
      );
      return info.InstanceInformationList?.[0]?.PingStatus === "Online" ? true : undefined;
    });
    await kill(first);
    const second = await start();

    // Act: each change answered, then the process dies at once.
    const sent = await second.ssm.send(
      new SendCommandCommand({
        DocumentName: "AWS-RunShellScript",
        InstanceIds: [a],
        Parameters: { commands: ["echo sent"] },
      }),
    );
    await second.ec2.send(
      new CreateTagsCommand({ Resources: [a], Tags: [{ Key: "kept", Value: "yes" }] }),
    );
    await second.ec2.send(new TerminateInstancesCommand({ InstanceIds: [b] }));
    const crash = await fetch(`${second.url}/_localcloud/instances/${a}/crash`, { method: "POST" });
    expect(crash.status).toBe(200);
    await kill(second);
    const third = await start();

    // Assess
    const instA = await describe1(third, a);
    expect(instA?.Tags).toEqual([{ Key: "kept", Value: "yes" }]);
    expect(instA?.State?.Name).toBe("stopped");
    expect(["shutting-down", "terminated"]).toContain((await describe1(third, b))?.State?.Name);
    const commandId = sent.Command?.CommandId ?? "";
    const inv = await waitFor(() =>
      third.ssm
        .send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: a }))
        .catch(() => undefined),
    );
    expect(inv.CommandId).toBe(commandId);
  }, 60_000);
});
