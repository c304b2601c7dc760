import { randomUUID } from "node:crypto";
import { and, eq, inArray, type SQL, sql } from "drizzle-orm";
import { Webhook } from "standardwebhooks";
import { forEachBounded } from "../bounded.js";
import {
  type WebhookDeliveryRow,
  type WebhookRow,
  type WorkspaceEventRow,
  webhookDeliveries,
  webhooks,
  workspaceEvents,
} from "../db/schema.js";
import { type Deadline, remainingMs } from "../deadline.js";
import type { Deps } from "../deps.js";
import { safeError } from "../redact.js";
import { rowsOf } from "../workspaces/transition.js";
import { retryDelayMs } from "./backoff.js";
import { payloadOf } from "./events.js";
import { openSecret, SecretUnreadableError } from "./secret.js";
import { type SendResult, sendWebhook } from "./send.js";
import { checkWebhookUrl, type Resolve, resolveTarget, systemResolve } from "./target.js";

export interface DeliverOptions {
  /** Nothing is started after this, and what runs is cut short at it. */
  deadline: Deadline;
  /** Only these workspaces' deliveries (the ones a change just wrote). */
  workspaceIds?: readonly string[];
  /** Only deliveries never attempted: a request delivers what it caused, not the backlog. */
  freshOnly?: boolean;
  /** Host name resolution (tests); the system resolver by default. */
  resolve?: Resolve;
}

/** What one call did: attempts made, and how they ended. */
export interface DeliverReport {
  attempted: number;
  delivered: number;
  /** Failed, to be retried later. */
  retrying: number;
  /** Failed for the last time: the retry period is over; the webhook is marked failing. */
  givenUp: number;
}

/** Deliveries claimed per round, and sent at once. */
const BATCH = 25;
const IN_FLIGHT = 8;
/** Below this much time left no new round is claimed: an attempt needs a connection at least. */
const MIN_ROUND_MS = 200;

/**
 * Delivers what is due, within `deadline`: the next pending delivery of each (webhook,
 * workspace) — a workspace's later event waits until the one before it was acknowledged or given
 * up — signed per Standard Webhooks, each attempt recorded with its status code and latency.
 * Several callers may run at once (requests, the sweep, the EC2-event function): a delivery is
 * claimed (`FOR UPDATE SKIP LOCKED` and a conditional UPDATE on its claim) before it is sent,
 * and a claim left by a caller that died expires, so each delivery is sent at least once.
 *
 * Never throws for a receiver's failure (nor for a refused address or an unreadable secret:
 * those are failed attempts); a database failure does throw.
 */
export async function deliverPending(deps: Deps, opts: DeliverOptions): Promise<DeliverReport> {
  const report: DeliverReport = { attempted: 0, delivered: 0, retrying: 0, givenUp: 0 };
  if (opts.workspaceIds?.length === 0) return report;
  const resolve = opts.resolve ?? systemResolve;
  // A claim outlives any attempt (each is bounded by the timeout), so a live sender never loses
  // its claim mid-send and a workspace's next event never overtakes the one still in flight.
  const claimSeconds = Math.ceil(deps.config.webhooks.timeoutMs / 1000) + 30;
  while (remainingMs(opts.deadline) > MIN_ROUND_MS) {
    const claimed = await claimDue(deps, opts, claimSeconds);
    if (claimed.length === 0) break;
    const context = await loadContext(deps, claimed);
    await forEachBounded(claimed, IN_FLIGHT, async (d) => {
      const ctx = context.get(d.id);
      if (!ctx) return;
      const outcome = await attempt(deps, opts.deadline, resolve, ctx.event, ctx.webhook);
      report.attempted++;
      report[await record(deps, d, outcome)]++;
    });
  }
  return report;
}

type Attempt =
  | { kind: "acknowledged"; statusCode: number; latencyMs: number }
  | { kind: "refused"; statusCode: number | null; latencyMs: number; error: string }
  /** Our own deadline cut it short: due again at once, no backoff (the receiver did no wrong). */
  | { kind: "cut"; latencyMs: number; error: string };

/** Claims up to a batch of due deliveries; each is the head of its (webhook, workspace). */
async function claimDue(
  deps: Deps,
  opts: DeliverOptions,
  claimSeconds: number,
): Promise<WebhookDeliveryRow[]> {
  const claim = randomUUID();
  const conds: SQL[] = [
    sql`d.state = 'pending'`,
    sql`d.next_attempt_at <= now()`,
    sql`(d.claimed_until is null or d.claimed_until < now())`,
    // In order per workspace: nothing of this workspace for this webhook is still pending
    // before it.
    sql`not exists (
      select 1 from webhook_deliveries e
      where e.webhook_id = d.webhook_id and e.workspace_id = d.workspace_id
        and e.state = 'pending' and e.seq < d.seq)`,
  ];
  if (opts.workspaceIds) conds.push(sql`d.workspace_id in ${opts.workspaceIds as string[]}`);
  if (opts.freshOnly) conds.push(sql`d.attempts = 0`);
  const result = await deps.db.execute(sql`
    with due as (
      select d.id from webhook_deliveries d
      where ${sql.join(conds, sql` and `)}
      order by d.next_attempt_at, d.seq
      limit ${BATCH}
      for update of d skip locked
    )
    update webhook_deliveries d set claim_id = ${claim}::uuid,
      claimed_until = now() + make_interval(secs => ${claimSeconds}),
      attempts = d.attempts + 1,
      period_started_at = coalesce(d.period_started_at, now())
    from due
    where d.id = due.id and d.state = 'pending'
      and (d.claimed_until is null or d.claimed_until < now())
    returning d.id`);
  const ids = rowsOf(result).map((r) => String(r.id));
  if (ids.length === 0) return [];
  return deps.db
    .select()
    .from(webhookDeliveries)
    .where(and(inArray(webhookDeliveries.id, ids), eq(webhookDeliveries.claimId, claim)));
}

async function loadContext(
  deps: Deps,
  claimed: WebhookDeliveryRow[],
): Promise<Map<string, { event: WorkspaceEventRow; webhook: WebhookRow }>> {
  const rows = await deps.db
    .select({ id: webhookDeliveries.id, event: workspaceEvents, webhook: webhooks })
    .from(webhookDeliveries)
    .innerJoin(workspaceEvents, eq(workspaceEvents.id, webhookDeliveries.eventId))
    .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
    .where(
      inArray(
        webhookDeliveries.id,
        claimed.map((d) => d.id),
      ),
    );
  return new Map(rows.map((r) => [r.id, { event: r.event, webhook: r.webhook }]));
}

async function attempt(
  deps: Deps,
  deadline: Deadline,
  resolve: Resolve,
  event: WorkspaceEventRow,
  webhook: WebhookRow,
): Promise<Attempt> {
  const started = performance.now();
  const refused = (error: string): Attempt => ({
    kind: "refused",
    statusCode: null,
    latencyMs: Math.round(performance.now() - started),
    error,
  });
  const allowPrivate = deps.config.webhooks.allowPrivate;
  // Checked again at send time: the settings may have changed since it was registered.
  const form = checkWebhookUrl(webhook.url, allowPrivate);
  if (!form.ok) return refused(`URL refused: ${form.reason}`);
  let secret: string;
  try {
    secret = openSecret(webhook.secretSealed, deps.config.adminToken);
  } catch (err) {
    if (err instanceof SecretUnreadableError) return refused(err.message);
    throw err;
  }
  const target = await resolveTarget(form.url, allowPrivate, resolve);
  if (!target.ok) return refused(`address refused: ${target.reason}`);
  const left = remainingMs(deadline);
  const timeoutMs = Math.min(deps.config.webhooks.timeoutMs, left);
  const body = JSON.stringify(payloadOf(event));
  const sentAt = new Date();
  // The event's id on every attempt, to every webhook: what a receiver de-duplicates on.
  const msgId = event.id;
  const result: SendResult = await sendWebhook({
    url: form.url,
    address: target.address,
    family: target.family,
    body,
    timeoutMs,
    signal: deadline.signal,
    headers: {
      "user-agent": "workspace-control-plane-webhooks",
      "webhook-id": msgId,
      "webhook-timestamp": String(Math.floor(sentAt.getTime() / 1000)),
      "webhook-signature": new Webhook(secret).sign(msgId, sentAt, body),
    },
  });
  if (result.kind === "answered") {
    if (result.statusCode >= 200 && result.statusCode < 300) {
      return { kind: "acknowledged", statusCode: result.statusCode, latencyMs: result.latencyMs };
    }
    const redirect = result.statusCode >= 300 && result.statusCode < 400;
    return {
      kind: "refused",
      statusCode: result.statusCode,
      latencyMs: result.latencyMs,
      error: redirect
        ? `answered ${result.statusCode}: redirects are not followed`
        : `answered ${result.statusCode}`,
    };
  }
  // Cut by our deadline (not by the receiver's slowness past its own timeout).
  if (timeoutMs < deps.config.webhooks.timeoutMs || deadline.signal.aborted) {
    return { kind: "cut", latencyMs: result.latencyMs, error: `${result.error} (deadline)` };
  }
  return { kind: "refused", statusCode: null, latencyMs: result.latencyMs, error: result.error };
}

/** Records an attempt and its consequence, if the claim is still ours; returns the tally key. */
async function record(
  deps: Deps,
  d: WebhookDeliveryRow,
  a: Attempt,
): Promise<"delivered" | "retrying" | "givenUp"> {
  const statusCode = a.kind === "cut" ? null : a.statusCode;
  const error = a.kind === "acknowledged" ? null : a.error;
  const mine = sql`d.id = ${d.id} and d.claim_id = ${d.claimId}::uuid`;
  let change: SQL;
  let tally: "delivered" | "retrying" | "givenUp";
  if (a.kind === "acknowledged") {
    tally = "delivered";
    change = sql`update webhook_deliveries d set state = 'delivered', delivered_at = now(),
        last_status_code = ${statusCode}::int, last_error = null, claim_id = null,
        claimed_until = null
      where ${mine} returning d.webhook_id, d.state`;
  } else {
    const delayMs = a.kind === "cut" ? 0 : retryDelayMs(d.attempts, deps.config.webhooks);
    const periodMs = deps.config.webhooks.retryPeriodMs;
    // Given up when the next attempt would fall past the retry period.
    const started = d.periodStartedAt ?? new Date();
    const over = a.kind !== "cut" && Date.now() + delayMs > started.getTime() + periodMs;
    tally = over ? "givenUp" : "retrying";
    change = sql`update webhook_deliveries d set
        state = ${over ? "failed" : "pending"}::webhook_delivery_state,
        next_attempt_at = now() + make_interval(secs => ${delayMs / 1000}),
        last_status_code = ${statusCode}::int, last_error = ${error}, claim_id = null,
        claimed_until = null
      where ${mine} returning d.webhook_id, d.state`;
  }
  try {
    await deps.db.execute(sql`
      with changed as (${change}),
      att as (
        insert into webhook_attempts (delivery_id, attempt, status_code, latency_ms, error)
        values (${d.id}, ${d.attempts}, ${statusCode}::int, ${a.latencyMs}, ${error})
      ),
      hook as (
        update webhooks h set failing_since = case
            when c.state = 'delivered' then null
            when c.state = 'failed' then coalesce(h.failing_since, now())
            else h.failing_since end
        from changed c where h.id = c.webhook_id and c.state in ('delivered', 'failed')
      )
      select 1`);
  } catch (err) {
    // The attempt happened; the record of it failing must not lose the others of the round.
    deps.log.error("webhook attempt not recorded", { deliveryId: d.id, error: safeError(err) });
  }
  return tally;
}
