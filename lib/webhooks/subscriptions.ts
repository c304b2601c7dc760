import { and, desc, eq, sql } from "drizzle-orm";
import type { Db } from "../db/client.js";
import { type WebhookRow, webhooks } from "../db/schema.js";
import type { Deps } from "../deps.js";
import type { Subscribable } from "./events.js";
import { mintSecret, sealSecret } from "./secret.js";
import { checkWebhookUrl } from "./target.js";

/**
 * Webhook subscriptions: a receiver's URL, the event types it wants, and its signing secret
 * (shown once, at creation and at rotation; kept sealed, see secret.ts).
 */

export interface SubscriptionInput {
  url: string;
  events: readonly Subscribable[];
  description?: string | null;
}

export type UrlRefused = { kind: "url_refused"; reason: string };

/** Normalises a subscription's event list: `*` alone stands for all; no duplicates. */
const eventList = (events: readonly Subscribable[]) =>
  events.includes("*") ? ["*"] : [...new Set(events)].sort();

/** Creates a subscription; the raw secret is returned here and never again. */
export async function createSubscription(
  deps: Deps,
  input: SubscriptionInput,
): Promise<{ kind: "created"; webhook: WebhookRow; secret: string } | UrlRefused> {
  const checked = checkWebhookUrl(input.url, deps.config.webhooks.allowPrivate);
  if (!checked.ok) return { kind: "url_refused", reason: checked.reason };
  const secret = mintSecret();
  const [webhook] = await deps.db
    .insert(webhooks)
    .values({
      url: checked.url.href,
      events: eventList(input.events),
      description: input.description ?? null,
      secretSealed: sealSecret(secret, deps.config.adminToken),
    })
    .returning();
  if (!webhook) throw new Error("insert returned no webhook");
  return { kind: "created", webhook, secret };
}

/** Every subscription, newest first (a deployment has a handful, not thousands). */
export async function listSubscriptions(db: Db): Promise<WebhookRow[]> {
  return db.select().from(webhooks).orderBy(desc(webhooks.createdAt), desc(webhooks.id)).limit(500);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** One subscription, or null (a malformed id included: it names nothing). */
export async function getSubscription(db: Db, id: string): Promise<WebhookRow | null> {
  if (!UUID.test(id)) return null;
  const [row] = await db.select().from(webhooks).where(eq(webhooks.id, id));
  return row ?? null;
}

/** Changes a subscription's URL, events or description; a new list applies to later events. */
export async function updateSubscription(
  deps: Deps,
  id: string,
  input: Partial<SubscriptionInput>,
): Promise<{ kind: "updated"; webhook: WebhookRow } | { kind: "not_found" } | UrlRefused> {
  if (!UUID.test(id)) return { kind: "not_found" };
  let url: string | undefined;
  if (input.url !== undefined) {
    const checked = checkWebhookUrl(input.url, deps.config.webhooks.allowPrivate);
    if (!checked.ok) return { kind: "url_refused", reason: checked.reason };
    url = checked.url.href;
  }
  const [webhook] = await deps.db
    .update(webhooks)
    .set({
      ...(url !== undefined && { url }),
      ...(input.events !== undefined && { events: eventList(input.events) }),
      ...(input.description !== undefined && { description: input.description }),
      updatedAt: sql`now()`,
    })
    .where(eq(webhooks.id, id))
    .returning();
  return webhook ? { kind: "updated", webhook } : { kind: "not_found" };
}

/** Deletes a subscription and its deliveries. True when it existed. */
export async function deleteSubscription(db: Db, id: string): Promise<boolean> {
  if (!UUID.test(id)) return false;
  return (await db.delete(webhooks).where(eq(webhooks.id, id)).returning()).length > 0;
}

/**
 * Replaces the signing secret at once: every attempt from now on is signed with the new one
 * (receivers should accept both for the changeover; the old one is not kept).
 */
export async function rotateSecret(
  deps: Deps,
  id: string,
): Promise<{ webhook: WebhookRow; secret: string } | null> {
  if (!UUID.test(id)) return null;
  const secret = mintSecret();
  const [webhook] = await deps.db
    .update(webhooks)
    .set({ secretSealed: sealSecret(secret, deps.config.adminToken), updatedAt: sql`now()` })
    .where(and(eq(webhooks.id, id)))
    .returning();
  return webhook ? { webhook, secret } : null;
}
