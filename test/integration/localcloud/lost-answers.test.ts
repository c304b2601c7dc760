import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { SendCommandCommand, SSMClient } from "@aws-sdk/client-ssm";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { defaultImageId } from "../../../lib/localcloud/index.js";
import {
  clientConfig,
  failure,
  launchOnline,
  startTestCloud,
  type TestCloud,
  waitFor,
} from "./harness.js";

// A call AWS performed but whose answer never reached the caller: the SDK sees a network error
// or its own timeout, and its retries repeat the call.

let t: TestCloud;
let online: string;
const made: { destroy(): void }[] = [];

beforeAll(async () => {
  t = await startTestCloud();
  online = await launchOnline(t);
});

afterEach(async () => {
  await t.control("DELETE", "/faults");
  await t.control("POST", "/stats/reset");
});

afterAll(async () => {
  for (const c of made) c.destroy();
  await t.close();
});

/** Clients with the given attempts and a short request timeout (a hung answer ends quickly). */
function clients(maxAttempts: number) {
  const config = {
    ...clientConfig(t.cloud),
    maxAttempts,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 1_000,
      requestTimeout: 500,
      throwOnRequestTimeout: true,
    }),
  };
  const ec2 = new EC2Client(config);
  const ssm = new SSMClient(config);
  made.push(ec2, ssm);
  return { ec2, ssm };
}

async function loseAnswers(spec: Record<string, unknown>): Promise<void> {
  const res = await t.control("POST", "/faults", spec);
  expect(res.status).toBe(201);
}

async function calls(key: string): Promise<number> {
  return (await t.control<{ calls: Record<string, number> }>("GET", "/stats")).json.calls[key] ?? 0;
}

const byToken = async (token: string) => {
  const out = await t.ec2.send(
    new DescribeInstancesCommand({ Filters: [{ Name: "client-token", Values: [token] }] }),
  );
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId);
};

const run = (token: string) =>
  new RunInstancesCommand({
    ImageId: defaultImageId,
    MinCount: 1,
    MaxCount: 1,
    ClientToken: token,
  });

describe("RunInstances whose answer is lost", () => {
  it("drop: the SDK sees a connection reset, yet the instance exists", async () => {
    // Prepare
    const { ec2 } = clients(1);
    await loseAnswers({ service: "ec2", action: "RunInstances", loseAnswer: "drop", times: 1 });

    // Act
    const err = await failure(ec2.send(run("lost-drop")));

    // Assess
    expect((err as Error & { code?: string }).code).toBe("ECONNRESET");
    expect(await byToken("lost-drop")).toHaveLength(1);
  });

  it("hang: the client's request timeout fires, yet the instance exists", async () => {
    const { ec2 } = clients(1);
    await loseAnswers({ service: "ec2", action: "RunInstances", loseAnswer: "hang", times: 1 });

    const err = await failure(ec2.send(run("lost-hang")));

    expect(err.name).toBe("TimeoutError");
    expect(await byToken("lost-hang")).toHaveLength(1);
  });

  it("retried under the same ClientToken, every lost attempt still makes one instance", async () => {
    const { ec2 } = clients(3);
    await loseAnswers({ service: "ec2", action: "RunInstances", loseAnswer: "drop" });

    const err = await failure(ec2.send(run("lost-thrice")));

    expect(err.message).toMatch(/socket hang up|ECONNRESET/);
    expect(await calls("ec2:RunInstances")).toBe(3);
    expect(await byToken("lost-thrice")).toHaveLength(1);
  }, 15_000);
});

describe("SendCommand whose answer is lost (it has no idempotency token)", () => {
  /** A script that appends one line per run to a file in the instance dir. */
  async function sendCounted(ssm: SSMClient, file: string): Promise<Error> {
    return failure(
      ssm.send(
        new SendCommandCommand({
          DocumentName: "AWS-RunShellScript",
          InstanceIds: [online],
          Parameters: { commands: [`echo run >> "$WORKSPACE_ROOT/${file}"`] },
        }),
      ),
    );
  }

  const runs = async (file: string, atLeast: number) =>
    waitFor(async () => {
      const text = await readFile(join(t.dir, "instances", online, file), "utf8").catch(() => "");
      const n = text.split("\n").filter(Boolean).length;
      return n >= atLeast ? n : undefined;
    });

  it("with the SDK's default three attempts the script runs three times", async () => {
    // Prepare
    const { ssm } = clients(3);
    await loseAnswers({ service: "ssm", action: "SendCommand", loseAnswer: "drop" });

    // Act
    await sendCounted(ssm, "runs-3.txt");

    // Assess: every attempt was performed; each one started the script before its answer was lost.
    expect(await calls("ssm:SendCommand")).toBe(3);
    expect(await runs("runs-3.txt", 3)).toBe(3);
  }, 15_000);

  it("a hung answer the SDK retries runs the script again", async () => {
    const { ssm } = clients(3);
    await loseAnswers({ service: "ssm", action: "SendCommand", loseAnswer: "hang" });

    await sendCounted(ssm, "runs-hang.txt");

    expect(await calls("ssm:SendCommand")).toBe(3);
    expect(await runs("runs-hang.txt", 3)).toBe(3);
  }, 15_000);

  it("with one attempt the script runs exactly once", async () => {
    const { ssm } = clients(1);
    await loseAnswers({ service: "ssm", action: "SendCommand", loseAnswer: "drop" });

    const err = await sendCounted(ssm, "runs-1.txt");

    expect((err as Error & { code?: string }).code).toBe("ECONNRESET");
    expect(await calls("ssm:SendCommand")).toBe(1);
    expect(await runs("runs-1.txt", 1)).toBe(1);
  });
});

describe("loseAnswer fault", () => {
  it("is refused together with an error, hang or malformed, and accepted alone", async () => {
    for (const extra of [{ error: "InternalError" }, { hang: true }, { malformed: true }]) {
      const res = await t.control("POST", "/faults", {
        service: "ec2",
        action: "RunInstances",
        loseAnswer: "drop",
        ...extra,
      });
      expect(res.status).toBe(400);
    }
    const bad = await t.control("POST", "/faults", {
      service: "ec2",
      action: "RunInstances",
      loseAnswer: "sometimes",
    });
    expect(bad.status).toBe(400);
  });

  it("leaves a call it does not match alone, and combines with latencyMs", async () => {
    const { ec2 } = clients(1);
    await loseAnswers({
      service: "ec2",
      action: "RunInstances",
      loseAnswer: "drop",
      latencyMs: 50,
      times: 1,
    });

    const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [online] }));
    const err = await failure(ec2.send(run("lost-latency")));

    expect(described.Reservations?.[0]?.Instances?.[0]?.InstanceId).toBe(online);
    expect((err as Error & { code?: string }).code).toBe("ECONNRESET");
    expect(await byToken("lost-latency")).toHaveLength(1);
  });
});
