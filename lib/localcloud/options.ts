/** Options of {@link startLocalCloud}; every delay is in milliseconds. */
export interface LocalCloudOptions {
  /** 0 picks an ephemeral port (tests); default 4566. */
  port?: number;
  /** Default "127.0.0.1". */
  host?: string;
  /** State dir: instances live in `<dir>/instances/<id>/`, state in `<dir>/state.json`. */
  dir: string;
  /** pending → running; default 300. */
  bootDelayMs?: number;
  /** SSM PingStatus becomes Online this long after running; default 200. */
  ssmOnlineDelayMs?: number;
  /** GetCommandInvocation answers InvocationDoesNotExist this long after SendCommand; default 200. */
  invocationVisibleDelayMs?: number;
  /** shutting-down → terminated; default 300. */
  terminateDelayMs?: number;
  /** Terminated instances stay visible this long; default one hour, as AWS's "usually less than one hour". */
  terminatedVisibleMs?: number;
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
    terminatedVisibleMs: opts.terminatedVisibleMs ?? 3_600_000,
    credentials: opts.credentials ?? { local: "local" },
    buckets: opts.buckets ?? [],
  };
}
