import { and, asc, desc, eq, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "../db/client.js";
import {
  type WebhookAttemptRow,
  type WebhookDeliveryRow,
  webhookAttempts,
  webhookDeliveries,
  workspaceEvents,
} from "../db/schema.js";
import { isUuid, type Page, toPage } from "../workspaces/queries.js";

/** A delivery as listed: its event's type and every attempt, oldest first. */
export interface DeliveryView {
  delivery: WebhookDeliveryRow;
  eventType: string;
  attempts: WebhookAttemptRow[];
}

/** Where a page of deliveries ended: the last one's `seq` (one delivery per event and webhook). */
export interface DeliveryCursor {
  seq: string;
}

const DELIVERY_CURSOR = /^d\|([1-9][0-9]{0,15})$/;

export const encodeDeliveryCursor = (c: DeliveryCursor) =>
  Buffer.from(`d|${c.seq}`).toString("base64url");

/** @returns the cursor, or null when it is not one this API issued. */
export function decodeDeliveryCursor(raw: string): DeliveryCursor | null {
  const m = DELIVERY_CURSOR.exec(Buffer.from(raw, "base64url").toString("utf8"));
  if (!m?.[1] || Number(m[1]) > Number.MAX_SAFE_INTEGER) return null;
  return { seq: m[1] };
}

/**
 * A webhook's deliveries, newest event first, with their attempts. Keyset-paged on `seq`,
 * which is unique per webhook (one delivery per event) and an integer: a page starts exactly
 * after the last one, whatever is written meanwhile.
 */
export async function listDeliveries(
  db: Db,
  webhookId: string,
  opts: { limit: number; cursor?: DeliveryCursor },
): Promise<Page<DeliveryView>> {
  const conds = [eq(webhookDeliveries.webhookId, webhookId)];
  if (opts.cursor) conds.push(lt(webhookDeliveries.seq, Number(opts.cursor.seq)));
  const rows = await db
    .select({ delivery: webhookDeliveries, eventType: workspaceEvents.type })
    .from(webhookDeliveries)
    .innerJoin(workspaceEvents, eq(workspaceEvents.id, webhookDeliveries.eventId))
    .where(and(...conds))
    .orderBy(desc(webhookDeliveries.seq))
    .limit(opts.limit + 1);
  const page = toPage(rows, opts.limit, (r) =>
    encodeDeliveryCursor({ seq: String(r.delivery.seq) }),
  );
  const ids = page.items.map((r) => r.delivery.id);
  const attempts =
    ids.length === 0
      ? []
      : await db
          .select()
          .from(webhookAttempts)
          .where(inArray(webhookAttempts.deliveryId, ids))
          .orderBy(asc(webhookAttempts.attempt), asc(webhookAttempts.at));
  return {
    items: page.items.map((r) => ({
      ...r,
      attempts: attempts.filter((a) => a.deliveryId === r.delivery.id),
    })),
    nextCursor: page.nextCursor,
  };
}

/** A delivery's state now, or null when it is gone. */
export async function deliveryState(db: Db, deliveryId: string) {
  const [row] = await db
    .select({ state: webhookDeliveries.state })
    .from(webhookDeliveries)
    .where(eq(webhookDeliveries.id, deliveryId));
  return row?.state ?? null;
}

/**
 * Makes a delivery due again now, with a fresh retry period, whatever its state (a given-up one,
 * or a delivered one the receiver lost). It keeps its place in its workspace's order: later
 * events of that workspace wait for it again. Null when the webhook has no such delivery.
 */
export async function retryDelivery(
  db: Db,
  webhookId: string,
  deliveryId: string,
): Promise<WebhookDeliveryRow | null> {
  if (!isUuid(deliveryId)) return null;
  const [row] = await db
    .update(webhookDeliveries)
    .set({
      state: "pending",
      nextAttemptAt: sql`now()`,
      periodStartedAt: sql`now()`,
      deliveredAt: null,
    })
    .where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.webhookId, webhookId)))
    .returning();
  return row ?? null;
}
