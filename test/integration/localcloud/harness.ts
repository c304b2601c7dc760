import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DescribeInstancesCommand, EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { S3Client } from "@aws-sdk/client-s3";
import { DescribeInstanceInformationCommand, SSMClient } from "@aws-sdk/client-ssm";
import {
  defaultImageId,
  type LocalCloud,
  type LocalCloudOptions,
  startLocalCloud,
} from "../../../lib/localcloud/index.js";

import { waitFor } from "../../support/wait.js";

export { waitFor };

export const credentials = { accessKeyId: "test", secretAccessKey: "test" };
/** The same key as the cloud's `credentials` option: S3 verifies every signature. */
export const knownKeys = { [credentials.accessKeyId]: credentials.secretAccessKey };

/** Client config for the local cloud, the way the application builds it. */
export function clientConfig(cloud: LocalCloud) {
  return { region: "us-east-1", endpoint: cloud.url, credentials, maxAttempts: 3 };
}

export interface TestCloud {
  cloud: LocalCloud;
  dir: string;
  ec2: EC2Client;
  ssm: SSMClient;
  s3: S3Client;
  control<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: T }>;
  /** Close the cloud and remove its dir. */
  close(): Promise<void>;
}

/** Short delays keep the suite fast; each test file starts its own cloud on an ephemeral port. */
export const fastDelays = {
  bootDelayMs: 50,
  ssmOnlineDelayMs: 50,
  invocationVisibleDelayMs: 50,
  terminateDelayMs: 50,
  stopDelayMs: 50,
} satisfies Partial<LocalCloudOptions>;

export async function startTestCloud(
  opts: Partial<LocalCloudOptions> & { dir?: string } = {},
): Promise<TestCloud> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "localcloud-test-")));
  const cloud = await startLocalCloud({
    port: 0,
    ...fastDelays,
    credentials: knownKeys,
    ...opts,
    dir,
  });
  return wrap(cloud, dir);
}

export function wrap(cloud: LocalCloud, dir: string): TestCloud {
  const config = clientConfig(cloud);
  const ec2 = new EC2Client(config);
  const ssm = new SSMClient(config);
  const s3 = new S3Client({ ...config, forcePathStyle: true });
  return {
    cloud,
    dir,
    ec2,
    ssm,
    s3,
    async control<T>(method: string, path: string, body?: unknown) {
      const res = await fetch(`${cloud.url}/_localcloud${path}`, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as T };
    },
    async close() {
      ec2.destroy();
      ssm.destroy();
      s3.destroy();
      await cloud.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function launch(
  t: TestCloud,
  input: Partial<ConstructorParameters<typeof RunInstancesCommand>[0]> = {},
): Promise<string> {
  const out = await t.ec2.send(
    new RunInstancesCommand({
      ImageId: defaultImageId,
      InstanceType: "t3.micro",
      MinCount: 1,
      MaxCount: 1,
      ...input,
    }),
  );
  const id = out.Instances?.[0]?.InstanceId;
  if (!id) throw new Error("RunInstances returned no instance");
  return id;
}

export async function stateOf(t: TestCloud, id: string): Promise<string | undefined> {
  const out = await t.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
  return out.Reservations?.[0]?.Instances?.[0]?.State?.Name;
}

/** Launch an instance and wait until SSM reports it Online. */
export async function launchOnline(
  t: TestCloud,
  input: Partial<ConstructorParameters<typeof RunInstancesCommand>[0]> = {},
): Promise<string> {
  const id = await launch(t, input);
  await waitFor(async () => {
    const out = await t.ssm.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: [id] }] }),
    );
    return out.InstanceInformationList?.[0]?.PingStatus === "Online" ? true : undefined;
  });
  return id;
}

/** The error a promise rejects with, for assertions on name / status. */
export async function failure(
  p: Promise<unknown>,
): Promise<Error & { $metadata?: { httpStatusCode?: number }; $fault?: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error) return err;
    throw new Error(`rejected with a non-error: ${String(err)}`);
  }
  throw new Error("expected the call to fail, it succeeded");
}

/** Whether a process still runs; a zombie waiting for init to reap it counts as dead. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The state letter follows the parenthesised command name.
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
