import { EC2Client } from "@aws-sdk/client-ec2";
import { S3Client } from "@aws-sdk/client-s3";
import { SSMClient } from "@aws-sdk/client-ssm";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import type { Log } from "../deps.js";
import { logAwsCalls, type WithMiddleware } from "./call-log.js";

export interface AwsClients {
  ec2: EC2Client;
  ssm: SSMClient;
  /**
   * SSM without automatic retries, for SendCommand only: it has no idempotency token, so the
   * SDK's retry of a call whose answer was lost runs the script again (shared/notes/aws.md).
   */
  ssmNoRetry: SSMClient;
  s3: S3Client;
  /** Each attempt's own timeout; a deadline can only shorten it. */
  requestTimeoutMs?: number;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

export interface AwsClientOptions {
  region: string;
  /** Overrides the standard `AWS_ENDPOINT_URL*` resolution (tests pass the local cloud's URL). */
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Total attempts including the first; the SDK's standard retry strategy backs off between. */
  maxAttempts?: number;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Where each call's outcome class goes, at DEBUG (`logAwsCalls`); unset: not logged. */
  log?: Log;
}

/**
 * Builds the three SDK clients once, with explicit retries and timeouts: the SDK's timeouts are
 * off by default, and since @smithy/node-http-handler 4.4 `requestTimeout` only logs unless
 * `throwOnRequestTimeout` is set — a hung call would otherwise hold a Lambda until it dies.
 */
export function createAwsClients(opts: AwsClientOptions): AwsClients {
  const common = {
    region: opts.region,
    maxAttempts: opts.maxAttempts ?? 3,
    ...(opts.endpoint !== undefined && { endpoint: opts.endpoint }),
    ...(opts.credentials !== undefined && { credentials: opts.credentials }),
  };
  const requestHandler = () =>
    new NodeHttpHandler({
      connectionTimeout: opts.connectionTimeoutMs ?? 2_000,
      requestTimeout: opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    });
  const clients = {
    ec2: new EC2Client({ ...common, requestHandler: requestHandler() }),
    ssm: new SSMClient({ ...common, requestHandler: requestHandler() }),
    ssmNoRetry: new SSMClient({ ...common, maxAttempts: 1, requestHandler: requestHandler() }),
    // Path-style keeps bucket names out of DNS, which the local cloud and custom endpoints need.
    s3: new S3Client({ ...common, forcePathStyle: true, requestHandler: requestHandler() }),
  };
  if (opts.log) {
    for (const client of Object.values(clients)) logAwsCalls(client as WithMiddleware, opts.log);
  }
  return { ...clients, requestTimeoutMs: opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS };
}
