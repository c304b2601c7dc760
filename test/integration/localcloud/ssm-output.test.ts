import { GetObjectCommand } from "@aws-sdk/client-s3";
import {
  CancelCommandCommand,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  ListCommandsCommand,
  SendCommandCommand,
} from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { failure, launchOnline, startTestCloud, type TestCloud, waitFor } from "./harness.js";

// SendCommand with OutputS3BucketName / OutputS3KeyPrefix: the agent uploads the whole streams
// to `<prefix>/<CommandId>/<instance>/awsrunShellScript/0.awsrunShellScript/stdout|stderr`
// before the invocation reports its end — the local cloud's S3 holds them as real objects.

const BUCKET = "cmd-output";
let t: TestCloud;
let instanceId: string;

beforeAll(async () => {
  t = await startTestCloud({ buckets: [BUCKET] });
  instanceId = await launchOnline(t);
});

afterAll(async () => {
  await t.close();
});

async function send(script: string, output?: { bucket: string; prefix: string }) {
  const out = await t.ssm.send(
    new SendCommandCommand({
      DocumentName: "AWS-RunShellScript",
      InstanceIds: [instanceId],
      Parameters: { commands: [script] },
      ...(output && { OutputS3BucketName: output.bucket, OutputS3KeyPrefix: output.prefix }),
    }),
  );
  return out.Command?.CommandId ?? "";
}

const terminal = new Set(["Success", "Failed", "TimedOut", "Cancelled"]);

async function ended(commandId: string): Promise<GetCommandInvocationCommandOutput> {
  return waitFor(async () => {
    const out = await t.ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
    );
    return terminal.has(out.Status ?? "") ? out : undefined;
  });
}

const keyOf = (prefix: string, commandId: string, stream: string) =>
  `${prefix}/${commandId}/${instanceId}/awsrunShellScript/0.awsrunShellScript/${stream}`;

async function object(key: string, bucket = BUCKET): Promise<string> {
  const out = await t.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await out.Body?.transformToString("utf8")) ?? "";
}

describe("Run Command output to S3", () => {
  it("uploads the whole stdout and stderr under the agent's key layout before the end is reported", async () => {
    // Prepare: 30,000 characters of stdout, more than the 24,000 SSM keeps inline.
    const script =
      "i=0; while [ $i -lt 3000 ]; do printf '%09d\\n' $i; i=$((i+1)); done; echo oops >&2";

    // Act
    const commandId = await send(script, { bucket: BUCKET, prefix: "commands/ws-1/" });
    const inv = await ended(commandId);

    // Assess: the objects exist as soon as the invocation is terminal.
    const stdout = await object(keyOf("commands/ws-1", commandId, "stdout"));
    expect(stdout).toHaveLength(30_000);
    expect(stdout.endsWith("000002999\n")).toBe(true);
    expect(await object(keyOf("commands/ws-1", commandId, "stderr"))).toBe("oops\n");
    expect(inv.StandardOutputContent?.endsWith("--output truncated--")).toBe(true);
    expect(inv.StandardOutputContent).toHaveLength(24_000);
    expect(inv.StandardOutputUrl).toBe(
      `https://s3.us-east-1.amazonaws.com/${BUCKET}/${keyOf("commands/ws-1", commandId, "stdout")}`,
    );
    const listed = await t.ssm.send(new ListCommandsCommand({ CommandId: commandId }));
    expect(listed.Commands?.[0]).toMatchObject({
      OutputS3BucketName: BUCKET,
      OutputS3KeyPrefix: "commands/ws-1/",
    });
  });

  it("uploads nothing for an empty stream", async () => {
    const commandId = await send("echo only-stdout", { bucket: BUCKET, prefix: "p" });
    await ended(commandId);

    expect(await object(keyOf("p", commandId, "stdout"))).toBe("only-stdout\n");
    const err = await failure(object(keyOf("p", commandId, "stderr")));
    expect(err.name).toBe("NoSuchKey");
  });

  it("uploads what a cancelled command printed", async () => {
    const commandId = await send("echo before; sleep 30", { bucket: BUCKET, prefix: "c" });
    await waitFor(async () => {
      const out = await t.ssm
        .send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }))
        .catch(() => undefined);
      return out?.Status === "InProgress" ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, 200));

    await t.ssm.send(new CancelCommandCommand({ CommandId: commandId }));

    expect((await ended(commandId)).Status).toBe("Cancelled");
    expect(await object(keyOf("c", commandId, "stdout"))).toBe("before\n");
  });

  it("takes a bucket that does not exist; the command succeeds and nothing is uploaded", async () => {
    const commandId = await send("echo hi", { bucket: "no-such-bucket", prefix: "x" });

    const inv = await ended(commandId);

    expect(inv).toMatchObject({ Status: "Success", StandardOutputContent: "hi\n" });
    const err = await failure(object(keyOf("x", commandId, "stdout"), "no-such-bucket"));
    expect(err.name).toBe("NoSuchBucket");
  });

  it("refuses a bucket name or key prefix outside SendCommand's lengths", async () => {
    for (const [bucket, prefix] of [
      ["ab", "p"],
      [BUCKET, "k".repeat(501)],
    ] as const) {
      const err = await failure(send("true", { bucket, prefix }));
      expect(err.name).toBe("ValidationException");
    }
  });
});
