import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

export const WORKSPACE_STATUSES = [
  "provisioning",
  "awaiting_agent",
  "online",
  "degraded",
  "offline",
  "failed",
  "stopping",
  "stopped",
  "starting",
  "removing",
  "removed",
] as const;
export type WorkspaceStatus = (typeof WORKSPACE_STATUSES)[number];

export const PLUGIN_STATES = ["installing", "installed", "failed", "uninstalling"] as const;
export type PluginState = (typeof PLUGIN_STATES)[number];

/** A plugin record's installed facts, as kept in `previous` while an operation runs. */
export interface PluginSnapshot {
  state: "installed" | "failed";
  version: string;
  source: string;
  digest: string;
  error: string | null;
}

/**
 * What a command is, as the API reports it: SSM's statuses mapped to a small set
 * (lib/commands/status.ts). `pending` until the agent starts it, `undeliverable` when it never
 * reached the instance (nothing ran).
 */
export const COMMAND_STATUSES = [
  "pending",
  "running",
  "succeeded",
  "failed",
  "timed_out",
  "cancelled",
  "undeliverable",
] as const;
export type CommandStatus = (typeof COMMAND_STATUSES)[number];

export const workspaceStatus = pgEnum("workspace_status", WORKSPACE_STATUSES);
export const pluginState = pgEnum("plugin_state", PLUGIN_STATES);
export const commandStatus = pgEnum("command_status", COMMAND_STATUSES);

const timestamps = {
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
};

export const workspaces = pgTable(
  "workspaces",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    name: text("name").notNull(),
    runtime: text("runtime").notNull(),
    tier: integer("tier").notNull().default(1),
    status: workspaceStatus("status").notNull(),
    instanceId: text("instance_id"),
    generation: integer("generation").notNull().default(0),
    launchedAt: timestamp("launched_at", { withTimezone: true }),
    lastHeartbeatAt: timestamp("last_heartbeat_at", { withTimezone: true }),
    lastError: text("last_error"),
    // The user's environment for the runtime, kept so a re-driven launch sends identical
    // parameters under the same ClientToken. Never returned by the API (only its keys).
    env: jsonb("env").$type<Record<string, string>>().notNull().default({}),
    idempotencyKey: text("idempotency_key").unique("workspaces_idempotency_key_unique"),
    requestHash: text("request_hash"),
    // Launched able to hibernate (HibernationOptions.Configured, an encrypted root volume sized
    // for its memory): part of the launch parameters, so a re-drive sends the same.
    hibernation: boolean("hibernation").notNull().default(false),
    // Why a `stopping`/`stopped` workspace was stopped (`user` | `idle`), and `hibernated`: while
    // stopping, whether a hibernation was asked for; once stopped, whether EC2 hibernated it.
    stoppedReason: text("stopped_reason"),
    hibernated: boolean("hibernated").notNull().default(false),
    // Idle auto-stop: after this many seconds without activity (null: the deployment's
    // IDLE_STOP_SECONDS; 0: never), stop or hibernate (null: IDLE_ACTION).
    idleStopSeconds: integer("idle_stop_seconds"),
    idleAction: text("idle_action"),
    // The last real work reported: a busy heartbeat, a plugin operation, a command, or
    // `POST /workspaces/:id/activity`. An idle heartbeat keeps a workspace alive, not active.
    lastActivityAt: timestamp("last_activity_at", { withTimezone: true }),
    ...timestamps,
  },
  (t) => [
    // The list route pages newest first; the sweep selects by status.
    index("workspaces_created_idx").on(t.createdAt.desc(), t.id.desc()),
    index("workspaces_status_idx").on(t.status, t.runtime),
    index("workspaces_instance_idx").on(t.instanceId),
    check("workspaces_tier_check", sql`${t.tier} between 1 and 99`),
    check("workspaces_idle_action_check", sql`${t.idleAction} in ('stop', 'hibernate')`),
    check("workspaces_stopped_reason_check", sql`${t.stoppedReason} in ('user', 'idle')`),
    check("workspaces_idle_stop_check", sql`${t.idleStopSeconds} >= 0`),
  ],
);

export const workspaceTokens = pgTable(
  "workspace_tokens",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    workspaceId: uuid("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    tokenHash: text("token_hash").notNull(),
    prefix: text("prefix").notNull(),
    // An instance's token is good only for the generation it was launched with; null for a
    // minted token (external agents, `POST /workspaces/:id/tokens`).
    generation: integer("generation"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("workspace_tokens_hash_idx").on(t.tokenHash),
    index("workspace_tokens_workspace_idx").on(t.workspaceId),
  ],
);

export const workspacePlugins = pgTable(
  "workspace_plugins",
  {
    workspaceId: uuid("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    version: text("version").notNull(),
    source: text("source").notNull(),
    digest: text("digest").notNull(),
    state: pluginState("state").notNull(),
    commandId: text("command_id"),
    error: text("error"),
    // The claim of the operation in progress (`installing`/`uninstalling`), taken before anything
    // is sent; every later write of that operation names it, so a stale one changes nothing.
    opId: uuid("op_id"),
    // The instance the operation's command was (or is to be) sent to.
    instanceId: text("instance_id"),
    // What re-sending the install program needs (after a lost SendCommand answer, or to re-apply
    // the plugin to a restarted workspace's new instance): the staged archive and its skills.
    archiveKey: text("archive_key"),
    archiveSha256: text("archive_sha256"),
    skills: jsonb("skills").$type<string[]>().notNull().default([]),
    // The record as it was before the operation claimed it, restored when the operation ends
    // without changing the instance's files (nothing sent, or the program rolled back).
    previous: jsonb("previous").$type<PluginSnapshot | null>(),
    ...timestamps,
  },
  (t) => [
    primaryKey({ name: "workspace_plugins_pk", columns: [t.workspaceId, t.name] }),
    index("workspace_plugins_state_idx").on(t.state),
  ],
);

export const workspaceEvents = pgTable(
  "workspace_events",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    // The log's order. Every event is written while its workspace's row is locked (FOR UPDATE in
    // transition(), the heartbeat; a new row is invisible until it commits), so per workspace a
    // later seq is a later commit. A number, not a time: time ties and is taken at BEGIN.
    seq: bigint("seq", { mode: "number" }).notNull().generatedAlwaysAsIdentity(),
    workspaceId: uuid("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    // What happened (an `EventType` of lib/webhooks/events.ts): a status change (`from`/`to`
    // set; `workspace.created` and `workspace.removed` are status changes too) or a plugin or
    // command outcome (`to` null, the facts in `data`). The log is the webhooks' outbox.
    type: text("type").notNull().default("workspace.status_changed"),
    from: workspaceStatus("from"),
    to: workspaceStatus("to"),
    reason: text("reason").notNull(),
    actor: text("actor").notNull(),
    data: jsonb("data").$type<Record<string, unknown>>().notNull().default({}),
    // When the change was written: clock_timestamp(), not now() (the transaction's start), so a
    // writer that began early but committed after another does not appear to precede it.
    at: timestamp("at", { withTimezone: true }).notNull().default(sql`clock_timestamp()`),
  },
  (t) => [index("workspace_events_workspace_seq_idx").on(t.workspaceId, t.seq)],
);

/**
 * The audit trail of `POST /workspaces/:id/commands`: every command is recorded here before it
 * is sent — who asked, what (argv, or a script's sha256 and size: its text is not kept), where
 * (instance and generation), and how it ended. Env values are never stored, only their keys;
 * the output lives in the staging bucket under `commands/`, with its lifecycle.
 */
export const workspaceCommands = pgTable(
  "workspace_commands",
  {
    // The API's command id; also the claim a lost send is found by in SSM's history (its marker
    // is in the SendCommand Comment), as a record is written once per command, never reused.
    id: uuid("id").primaryKey().defaultRandom(),
    // The list's order (newest first), as for events: a number, not a time.
    seq: bigint("seq", { mode: "number" }).notNull().generatedAlwaysAsIdentity(),
    workspaceId: uuid("workspace_id")
      .notNull()
      .references(() => workspaces.id, { onDelete: "cascade" }),
    instanceId: text("instance_id").notNull(),
    generation: integer("generation").notNull(),
    // `admin`, or `token:<prefix>` for a workspace token.
    requestedBy: text("requested_by").notNull(),
    kind: text("kind").$type<"argv" | "script">().notNull(),
    argv: jsonb("argv").$type<string[] | null>(),
    scriptSha256: text("script_sha256"),
    scriptBytes: integer("script_bytes"),
    cwd: text("cwd"),
    envKeys: jsonb("env_keys").$type<string[]>().notNull().default([]),
    timeoutSeconds: integer("timeout_seconds").notNull(),
    status: commandStatus("status").notNull().default("pending"),
    exitCode: integer("exit_code"),
    // SSM's CommandId once known; null while the send's answer is lost (the sweep looks).
    ssmCommandId: text("ssm_command_id"),
    error: text("error"),
    // `Idempotency-Key` and a keyed hash of what was asked (no env value can be read back).
    idempotencyKey: text("idempotency_key"),
    requestHash: text("request_hash"),
    requestedAt: timestamp("requested_at", { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp("started_at", { withTimezone: true }),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index("workspace_commands_workspace_seq_idx").on(t.workspaceId, t.seq),
    // The sweep's commands pass reads the unfinished ones.
    index("workspace_commands_status_idx").on(t.status, t.seq),
    // Nulls are distinct: only requests that carry a key take part.
    uniqueIndex("workspace_commands_idempotency_idx").on(t.workspaceId, t.idempotencyKey),
    check(
      "workspace_commands_kind_check",
      sql`(${t.kind} = 'argv' and ${t.argv} is not null and ${t.scriptSha256} is null) or (${t.kind} = 'script' and ${t.argv} is null and ${t.scriptSha256} is not null)`,
    ),
  ],
);

export const WEBHOOK_DELIVERY_STATES = ["pending", "delivered", "failed"] as const;
export type WebhookDeliveryState = (typeof WEBHOOK_DELIVERY_STATES)[number];
export const webhookDeliveryState = pgEnum("webhook_delivery_state", WEBHOOK_DELIVERY_STATES);

export const webhooks = pgTable(
  "webhooks",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    url: text("url").notNull(),
    // Event types it wants (`*`: all). Read by the fan-out trigger on workspace_events.
    events: text("events").array().notNull(),
    description: text("description"),
    // The signing secret, sealed (lib/webhooks/secret.ts): AES-256-GCM under a key derived from
    // ADMIN_TOKEN, so a database dump or a read-only query path does not hand it out.
    secretSealed: text("secret_sealed").notNull(),
    // Set when a delivery was given up after the retry period; cleared by the next success.
    failingSince: timestamp("failing_since", { withTimezone: true }),
    ...timestamps,
  },
  (t) => [index("webhooks_created_idx").on(t.createdAt.desc(), t.id.desc())],
);

export const webhookDeliveries = pgTable(
  "webhook_deliveries",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    webhookId: uuid("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    // The event; its id is the `webhook-id` header, the same on every attempt.
    eventId: uuid("event_id")
      .notNull()
      .references(() => workspaceEvents.id, { onDelete: "cascade" }),
    workspaceId: uuid("workspace_id").notNull(),
    // The event's seq: a workspace's deliveries to one webhook go out in this order.
    seq: bigint("seq", { mode: "number" }).notNull(),
    state: webhookDeliveryState("state").notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true }).notNull().defaultNow(),
    // The retry period runs from here (the first attempt, or the last manual retry).
    periodStartedAt: timestamp("period_started_at", { withTimezone: true }),
    // A sender's claim: another sender leaves the row alone until it expires (a dead sender's
    // claim lapses, and the delivery is sent again: at least once).
    claimId: uuid("claim_id"),
    claimedUntil: timestamp("claimed_until", { withTimezone: true }),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    deliveredAt: timestamp("delivered_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("webhook_deliveries_event_idx").on(t.webhookId, t.eventId),
    // The listing pages newest first; the order rule looks up a workspace's earlier ones.
    index("webhook_deliveries_list_idx").on(t.webhookId, t.seq.desc(), t.id.desc()),
    index("webhook_deliveries_order_idx").on(t.webhookId, t.workspaceId, t.seq),
    index("webhook_deliveries_due_idx").on(t.nextAttemptAt).where(sql`${t.state} = 'pending'`),
  ],
);

export const webhookAttempts = pgTable(
  "webhook_attempts",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    deliveryId: uuid("delivery_id")
      .notNull()
      .references(() => webhookDeliveries.id, { onDelete: "cascade" }),
    attempt: integer("attempt").notNull(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    statusCode: integer("status_code"),
    latencyMs: integer("latency_ms").notNull(),
    // Why it did not count as acknowledged (a refused address, a timeout, a status): never the
    // receiver's body, never a header.
    error: text("error"),
  },
  (t) => [index("webhook_attempts_delivery_idx").on(t.deliveryId, t.attempt)],
);

export const pluginAllowlist = pgTable("plugin_allowlist", {
  name: text("name").primaryKey(),
});

export const sweepLeases = pgTable("sweep_leases", {
  name: text("name").primaryKey(),
  holder: text("holder").notNull(),
  expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
});

export type WorkspaceRow = typeof workspaces.$inferSelect;
export type WorkspaceEventRow = typeof workspaceEvents.$inferSelect;
export type WorkspacePluginRow = typeof workspacePlugins.$inferSelect;
export type WorkspaceCommandRow = typeof workspaceCommands.$inferSelect;
export type WebhookRow = typeof webhooks.$inferSelect;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;
export type WebhookAttemptRow = typeof webhookAttempts.$inferSelect;
