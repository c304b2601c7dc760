// A namespace import: esbuild cannot tree-shake zod's `z` re-export (it keeps the whole
// namespace, every locale included, ~260 KiB), but it does shake `import * as z`
// (https://github.com/colinhacks/zod/issues/6597).
import * as z from "zod";

/**
 * Every setting of the product, parsed once from the environment by one zod schema (SPEC §3).
 * Nothing else in `lib/` reads `process.env`; `functions/` call {@link loadConfig} and pass the
 * result down inside `Deps`.
 */

export type Mode = "lambda" | "local";

/**
 * How long an API request may run: API Gateway's HTTP API integration timeout is 30 s
 * (docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html), the function's own
 * timeout is 29 s (infra/api.ts), and locally requests get the same.
 */
export const REQUEST_DEADLINE_SECONDS = 29;
/**
 * What an install's fetch and its wait for the program may add up to: the request's deadline
 * less the time to pack, claim, put to S3, presign and send (6 s) and to answer (1 s).
 */
export const INSTALL_FIT_SECONDS = REQUEST_DEADLINE_SECONDS - 7;

const DEFAULT_AMI =
  "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
const DEFAULT_TIERS = { "1": "t3.small", "2": "t3.medium", "3": "t3.large", "4": "t3.xlarge" };
// Each runtime's agent image. Operators replace these with their own registry's references.
const DEFAULT_RUNTIME_IMAGES = {
  langgraph: "ghcr.io/workspace-control-plane/runtime-langgraph:1",
  "claude-code": "ghcr.io/workspace-control-plane/runtime-claude-code:1",
};

// Every setting says what it accepts in its own words: the operator sees that one line, so a
// zod default like "expected number, received NaN" would leave them guessing.
const bool = z
  .enum(["true", "false", "1", "0"], "must be true, false, 1 or 0")
  .transform((v) => v === "true" || v === "1");
/** A whole number in [min, max]; an empty value (`PORT=`) is refused, not read as 0. */
const wholeNumber = (min: number, max: number, accepts: string) =>
  z
    .string()
    .trim()
    .regex(/^[0-9]+$/, accepts)
    .transform(Number)
    .pipe(z.number().int().min(min, accepts).max(max, accepts));
const seconds = (def: number) =>
  wholeNumber(1, 2_147_483, "must be a whole number of seconds, at least 1").default(def);
const port = (def: number) => wholeNumber(1, 65535, "must be a port number 1-65535").default(def);
const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, `must be one of ${values.join(", ")}`);
/** Letter case is the operator's choice (`debug`, `DEBUG`); the value is upper case. */
const logLevel = z
  .string()
  .transform((v) => v.trim().toUpperCase())
  .pipe(
    z.enum(
      ["DEBUG", "INFO", "WARN", "ERROR", "SILENT"],
      "must be one of DEBUG, INFO, WARN, ERROR, SILENT (any letter case)",
    ),
  );
const list = z
  .string()
  .default("")
  .transform((v) =>
    v
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  );
const jsonRecord = (def: Record<string, string>) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === "") return def;
      try {
        return JSON.parse(v) as unknown;
      } catch {
        ctx.addIssue({ code: "custom", message: "must be a JSON object" });
        return z.NEVER;
      }
    })
    .pipe(z.record(z.string().min(1), z.string().min(1)));

const tierMap = jsonRecord(DEFAULT_TIERS).refine(
  (m) => Object.keys(m).length > 0 && Object.keys(m).every((k) => /^[1-9][0-9]?$/.test(k)),
  "keys must be tier numbers 1-99",
);
const runtimeMap = jsonRecord(DEFAULT_RUNTIME_IMAGES).refine(
  (m) => Object.keys(m).length > 0 && !("external" in m),
  'must name at least one runtime and must not redefine "external"',
);

const schema = z.object({
  ADMIN_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  DATABASE_URL: z
    .string()
    .regex(
      /^(postgres(ql)?:\/\/|file:\/\/|memory:\/\/)/,
      "must start with postgres://, file:// or memory://",
    )
    .optional(),
  // Which driver a postgres:// URL goes through; unset: Neon for *.neon.tech, node-postgres else.
  DATABASE_DRIVER: oneOf(["neon", "pg"]).optional(),
  DEPLOYMENT_ID: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, "letters, digits, . _ - (1-64)")
    .default("local"),
  PLATFORM_URL: z.url("must be an http:// or https:// URL").optional(),
  AWS_REGION: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-[0-9]+$/, "must be an AWS Region code such as us-east-1")
    .default("us-east-1"),
  WORKSPACE_AMI: z
    .string()
    .min(1, "must be an AMI id or resolve:ssm:PARAMETER")
    .default(DEFAULT_AMI),
  WORKSPACE_INSTANCE_PROFILE: z.string().default(""),
  WORKSPACE_SUBNET_IDS: list,
  WORKSPACE_SECURITY_GROUP_IDS: list,
  TIER_INSTANCE_TYPES: tierMap,
  RUNTIME_IMAGES: runtimeMap,
  STAGING_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "must be an S3 bucket name")
    .optional(),
  PLUGINS_DIR: z.string().min(1, "must be a directory path").default("./plugins"),
  GITHUB_TARBALL_BASE: z
    .url("must be an http:// or https:// URL")
    .default("https://codeload.github.com"),
  PLUGIN_ALLOW_UNPINNED: bool.default(false),
  PLUGIN_MAX_BYTES: wholeNumber(
    1,
    Number.MAX_SAFE_INTEGER,
    "must be a whole number of bytes, at least 1",
  ).default(100 * 1024 * 1024),
  PLUGIN_MAX_FILES: wholeNumber(
    1,
    Number.MAX_SAFE_INTEGER,
    "must be a whole number, at least 1",
  ).default(10_000),
  PLUGIN_FETCH_TIMEOUT_SECONDS: seconds(12),
  INSTALL_SYNC_WAIT_SECONDS: z
    .string()
    .trim()
    .regex(/^[0-9]+(\.[0-9]+)?$/, "must be a number of seconds from 0 to 25")
    .transform(Number)
    .pipe(z.number().max(25, "must be a number of seconds from 0 to 25"))
    .default(10),
  DOWNLOAD_INLINE_MAX_BYTES: wholeNumber(
    1,
    Number.MAX_SAFE_INTEGER,
    "must be a whole number of bytes, at least 1",
  ).default(4 * 1024 * 1024),
  REMOTE_STALE_AFTER_SECONDS: seconds(90),
  PROVISION_TIMEOUT_SECONDS: seconds(600),
  LAUNCH_GRACE_SECONDS: seconds(300),
  DEGRADED_AFTER_SECONDS: seconds(300),
  SWEEP_INTERVAL_SECONDS: seconds(15),
  // Idle auto-stop defaults for workspaces that set none: 0 = never.
  IDLE_STOP_SECONDS: wholeNumber(
    0,
    2_147_483,
    "must be a whole number of seconds (0 = never)",
  ).default(0),
  IDLE_ACTION: oneOf(["stop", "hibernate"]).default("stop"),
  // Webhooks: private targets and http:// (default: only in local mode); one attempt's bound;
  // the retry schedule (exponential from the first delay, capped, for the period); what a
  // request may spend delivering the events it caused before it answers.
  WEBHOOK_ALLOW_PRIVATE: bool.optional(),
  WEBHOOK_TIMEOUT_SECONDS: z.coerce.number().positive().max(10).default(5),
  WEBHOOK_RETRY_PERIOD_SECONDS: seconds(24 * 3600),
  WEBHOOK_RETRY_FIRST_DELAY_SECONDS: z.coerce.number().positive().max(3600).default(5),
  WEBHOOK_RETRY_MAX_DELAY_SECONDS: z.coerce
    .number()
    .positive()
    .max(24 * 3600)
    .default(3600),
  WEBHOOK_INLINE_SECONDS: z.coerce.number().min(0).max(10).default(2),
  LOCAL_CLOUD: oneOf(["on", "off"]).default("on"),
  LOCALCLOUD_PORT: port(4566),
  // Where `npm start` keeps its state (admin token, PGlite, the local cloud), locked while it runs.
  DATA_DIR: z.string().min(1, "must be a directory path").default("./.data"),
  LOCALCLOUD_DIR: z.string().min(1, "must be a directory path").optional(),
  PORT: port(8787),
  LOG_LEVEL: logLevel.default("INFO"),
});

/** Rules across settings, reported with the single-setting ones. */
const settings = schema.superRefine((e, ctx) => {
  if (e.WEBHOOK_RETRY_MAX_DELAY_SECONDS < e.WEBHOOK_RETRY_FIRST_DELAY_SECONDS) {
    ctx.addIssue({
      code: "custom",
      path: ["WEBHOOK_RETRY_MAX_DELAY_SECONDS"],
      message: "must be at least WEBHOOK_RETRY_FIRST_DELAY_SECONDS",
    });
  }
  // A driver with PGlite means the operator expected a server: say so rather than ignore it.
  if (e.DATABASE_DRIVER !== undefined && !/^postgres(ql)?:\/\//.test(e.DATABASE_URL ?? "")) {
    ctx.addIssue({
      code: "custom",
      path: ["DATABASE_DRIVER"],
      message: "applies only to a postgres:// DATABASE_URL",
    });
  }
});

export interface Config {
  mode: Mode;
  adminToken: string | undefined;
  databaseUrl: string;
  /** `DATABASE_DRIVER`; undefined picks by host (`dbKindFor` in lib/db/client.ts). */
  databaseDriver: "neon" | "pg" | undefined;
  deploymentId: string;
  platformUrl: string | undefined;
  awsRegion: string;
  workspaceAmi: string;
  workspaceInstanceProfile: string;
  workspaceSubnetIds: string[];
  workspaceSecurityGroupIds: string[];
  tierInstanceTypes: Record<string, string>;
  runtimeImages: Record<string, string>;
  stagingBucket: string;
  pluginsDir: string;
  githubTarballBase: string;
  pluginAllowUnpinned: boolean;
  pluginMaxBytes: number;
  pluginMaxFiles: number;
  pluginFetchTimeoutSeconds: number;
  installSyncWaitSeconds: number;
  downloadInlineMaxBytes: number;
  remoteStaleAfterSeconds: number;
  provisionTimeoutSeconds: number;
  launchGraceSeconds: number;
  /** EC2 running but SSM not `Online` for longer than this → `degraded` (sweep liveness). */
  degradedAfterSeconds: number;
  sweepIntervalSeconds: number;
  idleStopSeconds: number;
  idleAction: "stop" | "hibernate";
  webhooks: WebhookSettings;
  localCloud: boolean;
  localCloudPort: number;
  localCloudDir: string;
  /** `DATA_DIR`: the local mode's state directory (PGlite and the local cloud default inside it). */
  dataDir: string;
  port: number;
  logLevel: "DEBUG" | "INFO" | "WARN" | "ERROR" | "SILENT";
}

/** How webhooks are sent and retried (the `WEBHOOK_*` settings). */
export interface WebhookSettings {
  /** Loopback and private targets, and `http://`, are allowed (development, tests). */
  allowPrivate: boolean;
  timeoutMs: number;
  retryPeriodMs: number;
  firstRetryDelayMs: number;
  maxRetryDelayMs: number;
  /** What a request may spend, after its own work, delivering what it caused. */
  inlineMs: number;
}

/** A setting that failed validation; the message names the variable, never its value. */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: { variable: string; message: string }[]) {
    super(`invalid settings: ${problems.map((p) => `${p.variable}: ${p.message}`).join("; ")}`);
  }
}

/**
 * Parses the settings. In `lambda` mode `ADMIN_TOKEN`, `DATABASE_URL` and `STAGING_BUCKET` are
 * required; locally they have embedded defaults (the admin token is supplied by the caller).
 * @throws ConfigError naming every bad variable.
 */
export function loadConfig(env: Record<string, string | undefined>, mode: Mode): Config {
  const parsed = settings.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((i) => ({ variable: String(i.path[0] ?? "?"), message: i.message })),
    );
  }
  const e = parsed.data;
  // An install fetches, then stages and sends, then waits: all inside one request's deadline.
  if (e.PLUGIN_FETCH_TIMEOUT_SECONDS + e.INSTALL_SYNC_WAIT_SECONDS > INSTALL_FIT_SECONDS) {
    throw new ConfigError(
      ["PLUGIN_FETCH_TIMEOUT_SECONDS", "INSTALL_SYNC_WAIT_SECONDS"].map((variable) => ({
        variable,
        message: `PLUGIN_FETCH_TIMEOUT_SECONDS + INSTALL_SYNC_WAIT_SECONDS must be at most ${INSTALL_FIT_SECONDS} (a request has ${REQUEST_DEADLINE_SECONDS} s; staging and sending need the rest)`,
      })),
    );
  }
  if (mode === "lambda") {
    const missing = (["ADMIN_TOKEN", "DATABASE_URL", "STAGING_BUCKET"] as const).filter(
      (k) => e[k] === undefined,
    );
    if (missing.length > 0) {
      throw new ConfigError(missing.map((variable) => ({ variable, message: "is required" })));
    }
  }
  return {
    mode,
    adminToken: e.ADMIN_TOKEN,
    databaseUrl: e.DATABASE_URL ?? `file://${under(e.DATA_DIR, "pglite")}`,
    databaseDriver: e.DATABASE_DRIVER,
    deploymentId: e.DEPLOYMENT_ID,
    platformUrl: e.PLATFORM_URL,
    awsRegion: e.AWS_REGION,
    workspaceAmi: e.WORKSPACE_AMI,
    workspaceInstanceProfile: e.WORKSPACE_INSTANCE_PROFILE,
    workspaceSubnetIds: e.WORKSPACE_SUBNET_IDS,
    workspaceSecurityGroupIds: e.WORKSPACE_SECURITY_GROUP_IDS,
    tierInstanceTypes: e.TIER_INSTANCE_TYPES,
    runtimeImages: e.RUNTIME_IMAGES,
    stagingBucket: e.STAGING_BUCKET ?? "wcp-local-staging",
    pluginsDir: e.PLUGINS_DIR,
    githubTarballBase: e.GITHUB_TARBALL_BASE.replace(/\/+$/, ""),
    pluginAllowUnpinned: e.PLUGIN_ALLOW_UNPINNED,
    pluginMaxBytes: e.PLUGIN_MAX_BYTES,
    pluginMaxFiles: e.PLUGIN_MAX_FILES,
    pluginFetchTimeoutSeconds: e.PLUGIN_FETCH_TIMEOUT_SECONDS,
    installSyncWaitSeconds: e.INSTALL_SYNC_WAIT_SECONDS,
    downloadInlineMaxBytes: e.DOWNLOAD_INLINE_MAX_BYTES,
    remoteStaleAfterSeconds: e.REMOTE_STALE_AFTER_SECONDS,
    provisionTimeoutSeconds: e.PROVISION_TIMEOUT_SECONDS,
    launchGraceSeconds: e.LAUNCH_GRACE_SECONDS,
    degradedAfterSeconds: e.DEGRADED_AFTER_SECONDS,
    sweepIntervalSeconds: e.SWEEP_INTERVAL_SECONDS,
    idleStopSeconds: e.IDLE_STOP_SECONDS,
    idleAction: e.IDLE_ACTION,
    webhooks: {
      allowPrivate: e.WEBHOOK_ALLOW_PRIVATE ?? mode === "local",
      timeoutMs: Math.round(e.WEBHOOK_TIMEOUT_SECONDS * 1000),
      retryPeriodMs: e.WEBHOOK_RETRY_PERIOD_SECONDS * 1000,
      firstRetryDelayMs: Math.round(e.WEBHOOK_RETRY_FIRST_DELAY_SECONDS * 1000),
      maxRetryDelayMs: Math.round(e.WEBHOOK_RETRY_MAX_DELAY_SECONDS * 1000),
      inlineMs: Math.round(e.WEBHOOK_INLINE_SECONDS * 1000),
    },
    localCloud: e.LOCAL_CLOUD === "on",
    localCloudPort: e.LOCALCLOUD_PORT,
    localCloudDir: e.LOCALCLOUD_DIR ?? under(e.DATA_DIR, "localcloud"),
    dataDir: e.DATA_DIR,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
  };
}

/** `name` inside `dir`, spelled as the operator wrote `dir` (`./.data` stays `./.data/…`). */
const under = (dir: string, name: string) => `${dir.replace(/\/+$/, "")}/${name}`;

/** Runtimes that launch an instance; `external` never does. */
export function isKnownRuntime(config: Config, runtime: string): boolean {
  return runtime === "external" || Object.hasOwn(config.runtimeImages, runtime);
}
