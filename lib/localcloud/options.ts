import type { CatalogueEntries } from "./catalogue.js";
import type { EventSink } from "./events.js";

/** Options of {@link startLocalCloud}; every delay is in milliseconds. */
export interface LocalCloudOptions {
  /** 0 picks an ephemeral port (tests); default 4566. */
  port?: number;
  /** Default "127.0.0.1". */
  host?: string;
  /**
   * State dir: instances live in `<dir>/instances/<id>/`, state in `<dir>/state.json` plus the
   * changes since in `<dir>/state.journal`.
   */
  dir: string;
  /** pending → running; default 300. */
  bootDelayMs?: number;
  /** SSM PingStatus becomes Online this long after running; default 200. */
  ssmOnlineDelayMs?: number;
  /** GetCommandInvocation answers InvocationDoesNotExist this long after SendCommand; default 200. */
  invocationVisibleDelayMs?: number;
  /** shutting-down → terminated; default 300. */
  terminateDelayMs?: number;
  /**
   * stopping → stopped after StopInstances (a stop or a hibernation); default 300. EC2 publishes
   * no duration, only that an instance "appears stuck in the stopping state" when it takes long
   * (API_StopInstances.html); a start after it takes `bootDelayMs`, as a first boot does.
   */
  stopDelayMs?: number;
  /** Terminated instances stay visible this long; default one hour, as AWS's "usually less than one hour". */
  terminatedVisibleMs?: number;
  /**
   * For this long after RunInstances the new instance is invisible to DescribeInstances (left
   * out of filtered listings, `InvalidInstanceID.NotFound` when named) and to the calls that
   * name it (TerminateInstances, GetConsoleOutput, CreateTags): EC2's eventual consistency
   * (docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html). Default 0; settable at
   * run time through `PUT /_localcloud/settings`, for the launches after.
   */
  describeLagMs?: number;
  /**
   * How long a command sent to a stopped (registered) instance waits before its invocation ends
   * `TimedOut` / "Delivery Timed Out". SSM waits the command's TimeoutSeconds plus its
   * executionTimeout (docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html);
   * a short stand-in keeps tests fast. Default 300.
   */
  deliveryTimeoutMs?: number;
  /**
   * When true, a StopInstances with `Hibernate` on an instance able to hibernate stops it plainly
   * instead (stateReason `Client.UserInitiatedShutdown`): "If the instance cannot hibernate
   * successfully, a normal shutdown occurs" (API_StopInstances.html). Default false; settable at
   * run time through `PUT /_localcloud/settings`.
   */
  hibernationFallback?: boolean;
  /** AMIs, security groups, subnets and instance profiles RunInstances accepts, beyond the defaults. */
  catalogue?: CatalogueEntries;
  /**
   * The access keys S3 knows, access key id → secret access key; a request signed with any other
   * key is refused (`InvalidAccessKeyId`). Default `{local: "local"}`, what `npm start` signs with.
   */
  credentials?: Record<string, string>;
  /**
   * Buckets that exist from the start, as if made by CreateBucket. Buckets are directories under
   * `<dir>/s3/`, so they (and the ones CreateBucket made) persist across restarts; any other
   * bucket answers `NoSuchBucket`.
   */
  buckets?: string[];
  /**
   * In-process targets of the EC2 state-change events (events.ts), beside the URLs registered
   * through `POST /_localcloud/eventTargets`. Default none.
   */
  eventTargets?: EventSink[];
  /**
   * How long an event takes to reach its targets, plus up to `eventJitterMs` at random. AWS
   * publishes no figure for EC2 → EventBridge → target latency; defaults 500 and 250, so two
   * changes within a quarter second may arrive in either order, as EventBridge promises none.
   */
  eventDelayMs?: number;
  eventJitterMs?: number;
  /**
   * A delivery failing this long is given up on: EventBridge's default retry policy is
   * "24 hours and up to 185 times" (eventbridge/latest/userguide/eb-rule-retry-policy.html).
   * Default 24 h.
   */
  eventMaxAgeMs?: number;
  /**
   * The first retry of a failed delivery waits about this long, doubling per attempt up to
   * 5 minutes; AWS does not publish its backoff's base. Default 1000.
   */
  eventRetryBaseMs?: number;
}

export type ResolvedOptions = Required<LocalCloudOptions>;

export function resolveOptions(opts: LocalCloudOptions): ResolvedOptions {
  return {
    port: opts.port ?? 4566,
    host: opts.host ?? "127.0.0.1",
    dir: opts.dir,
    bootDelayMs: opts.bootDelayMs ?? 300,
    ssmOnlineDelayMs: opts.ssmOnlineDelayMs ?? 200,
    invocationVisibleDelayMs: opts.invocationVisibleDelayMs ?? 200,
    terminateDelayMs: opts.terminateDelayMs ?? 300,
    stopDelayMs: opts.stopDelayMs ?? 300,
    terminatedVisibleMs: opts.terminatedVisibleMs ?? 3_600_000,
    describeLagMs: opts.describeLagMs ?? 0,
    deliveryTimeoutMs: opts.deliveryTimeoutMs ?? 300,
    hibernationFallback: opts.hibernationFallback ?? false,
    catalogue: opts.catalogue ?? {},
    credentials: opts.credentials ?? { local: "local" },
    buckets: opts.buckets ?? [],
    eventTargets: opts.eventTargets ?? [],
    eventDelayMs: opts.eventDelayMs ?? 500,
    eventJitterMs: opts.eventJitterMs ?? 250,
    eventMaxAgeMs: opts.eventMaxAgeMs ?? 86_400_000,
    eventRetryBaseMs: opts.eventRetryBaseMs ?? 1_000,
  };
}
