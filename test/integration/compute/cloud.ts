import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AwsClients, createAwsClients } from "../../../lib/compute/clients.js";
import type { Deps } from "../../../lib/deps.js";
import { systemClock } from "../../../lib/deps.js";
import {
  type LocalCloud,
  type LocalCloudOptions,
  startLocalCloud,
} from "../../../lib/localcloud/index.js";
import { testConfig } from "../../support/context.js";

import { launchInstances } from "../../support/fleet.js";

export { waitFor } from "../../support/wait.js";

/**
 * The local cloud and the product's own SDK clients, for the compute suites: one cloud per test
 * file on an ephemeral port, short delays so a boot takes tens of milliseconds.
 */

export type ComputeDeps = Pick<Deps, "aws" | "clock" | "config">;

export interface ClientSettings {
  maxAttempts?: number;
  requestTimeoutMs?: number;
  connectionTimeoutMs?: number;
}

export interface FaultSpec {
  service: "ec2" | "ssm" | "s3";
  action: string;
  error?: string;
  httpStatus?: number;
  message?: string;
  times?: number;
  probability?: number;
  latencyMs?: number;
  hang?: boolean;
  malformed?: boolean;
  /** Perform the call, then drop the connection or never answer. */
  loseAnswer?: "drop" | "hang";
}

/** What `GET /_localcloud/instances` reports about one instance. */
export interface InstanceView {
  id: string;
  state: string;
  tags: Record<string, string>;
  launchTime: string;
  dir: string;
  clientToken: string | null;
  ssmPingStatus: string | null;
  imageId: string;
  instanceType: string;
  /** Whether DescribeInstances lists it yet (`describeLagMs`). */
  describable: boolean;
}

export interface ComputeCloud {
  cloud: LocalCloud;
  url: string;
  /** Clients built the way `functions/` build them: explicit attempts and timeouts. */
  clients(settings?: ClientSettings): AwsClients;
  /** Deps for the compute verbs; `env` goes through the real settings parser. */
  deps(settings?: ClientSettings & { env?: Record<string, string> }): ComputeDeps;
  fault(spec: FaultSpec): Promise<void>;
  clearFaults(): Promise<void>;
  /** Calls per `service:Action` since the last reset. */
  stats(): Promise<Record<string, number>>;
  resetStats(): Promise<void>;
  calls(key: string): Promise<number>;
  instances(): Promise<InstanceView[]>;
  instance(id: string): Promise<InstanceView>;
  crash(id: string): Promise<void>;
  /** The instance keeps running while its SSM agent is lost (`online: false`) or back. */
  setAgentOnline(id: string, online: boolean): Promise<void>;
  /** Launches `count` plain instances through the SDK (20 per RunInstances call at most). */
  launchMany(count: number): Promise<string[]>;
  close(): Promise<void>;
}

export const fastCloud = {
  bootDelayMs: 50,
  ssmOnlineDelayMs: 50,
  invocationVisibleDelayMs: 50,
  terminateDelayMs: 50,
} satisfies Partial<LocalCloudOptions>;

/** The key the clients sign with; the cloud's S3 verifies every signature against it. */
const credentials = { accessKeyId: "t", secretAccessKey: "t" };

export async function startComputeCloud(
  opts: Partial<Omit<LocalCloudOptions, "dir" | "port">> = {},
): Promise<ComputeCloud> {
  const dir = await mkdtemp(join(tmpdir(), "compute-test-"));
  const cloud = await startLocalCloud({
    port: 0,
    ...fastCloud,
    credentials: { [credentials.accessKeyId]: credentials.secretAccessKey },
    // S3 knows only the buckets it was given: the staging bucket of the test settings.
    buckets: [testConfig().stagingBucket],
    ...opts,
    dir,
  });
  const made: AwsClients[] = [];

  const control = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${cloud.url}/_localcloud${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const json = (await res.json()) as T;
    if (res.status >= 300) {
      throw new Error(`control ${method} ${path} answered ${res.status}: ${JSON.stringify(json)}`);
    }
    return json;
  };

  const clients = (settings: ClientSettings = {}): AwsClients => {
    const aws = createAwsClients({
      region: "us-east-1",
      endpoint: cloud.url,
      credentials,
      maxAttempts: settings.maxAttempts ?? 3,
      requestTimeoutMs: settings.requestTimeoutMs ?? 5_000,
      connectionTimeoutMs: settings.connectionTimeoutMs ?? 2_000,
    });
    made.push(aws);
    return aws;
  };

  const stats = async () =>
    (await control<{ calls: Record<string, number> }>("GET", "/stats")).calls;

  return {
    cloud,
    url: cloud.url,
    clients,
    deps: (settings = {}) => ({
      aws: clients(settings),
      clock: systemClock,
      config: testConfig(settings.env),
    }),
    fault: async (spec) => {
      await control("POST", "/faults", spec);
    },
    clearFaults: async () => {
      await control("DELETE", "/faults");
    },
    stats,
    resetStats: async () => {
      await control("POST", "/stats/reset");
    },
    calls: async (key) => (await stats())[key] ?? 0,
    instances: async () =>
      (await control<{ instances: InstanceView[] }>("GET", "/instances")).instances,
    instance: (id) => control<InstanceView>("GET", `/instances/${id}`),
    setAgentOnline: async (id, online) => {
      await control("POST", `/instances/${id}/agent`, { online });
    },
    crash: async (id) => {
      await control("POST", `/instances/${id}/crash`);
    },
    launchMany: async (count) => launchInstances((made[0] ?? clients()).ec2, count),
    close: async () => {
      for (const aws of made) {
        aws.ec2.destroy();
        aws.ssm.destroy();
        aws.ssmNoRetry.destroy();
        aws.s3.destroy();
      }
      await cloud.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** An id of the right shape that the cloud never issued. */
export const unknownInstanceId = (n: number): string =>
  `i-${n.toString(16).padStart(17, "0").slice(-17)}`;
