import { createRoute, z } from "@hono/zod-openapi";
import { WEBHOOK_DELIVERY_STATES, type WebhookRow } from "../../db/schema.js";
import { within } from "../../deadline.js";
import { deliverPending } from "../../webhooks/deliver.js";
import {
  type DeliveryView,
  decodeDeliveryCursor,
  deliveryState,
  listDeliveries,
  retryDelivery,
} from "../../webhooks/deliveries.js";
import { SUBSCRIBABLE } from "../../webhooks/events.js";
import {
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  rotateSecret,
  updateSubscription,
} from "../../webhooks/subscriptions.js";
import { MAX_WEBHOOK_URL_LENGTH } from "../../webhooks/target.js";
import { newRouter } from "../context.js";
import { ApiError, AUTH_ERRORS, BODY_ERRORS, errorResponses, STORE_ERRORS } from "../errors.js";
import { authenticate } from "../middleware.js";
import { json, security } from "../openapi.js";

const WebhookSchema = z
  .object({
    id: z.uuid(),
    url: z.string(),
    events: z.array(z.enum(SUBSCRIBABLE)),
    description: z.string().nullable(),
    failing: z.boolean().openapi({
      description: "A delivery was given up after the retry period; cleared by the next success.",
    }),
    failingSince: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Webhook");

const AttemptSchema = z.object({
  attempt: z.number().int(),
  at: z.string(),
  statusCode: z.number().int().nullable(),
  latencyMs: z.number().int(),
  error: z.string().nullable(),
});

const DeliverySchema = z
  .object({
    id: z.uuid(),
    eventId: z.uuid().openapi({ description: "The `webhook-id` header, on every attempt." }),
    eventType: z.string(),
    workspaceId: z.uuid(),
    seq: z.number().int(),
    state: z.enum(WEBHOOK_DELIVERY_STATES),
    attempts: z.array(AttemptSchema),
    nextAttemptAt: z.string().nullable(),
    lastStatusCode: z.number().int().nullable(),
    lastError: z.string().nullable(),
    deliveredAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi("WebhookDelivery");

const Secret = z.string().openapi({
  description: "The signing secret (whsec_…), shown once: verify deliveries with it.",
});

const Fields = {
  url: z.string().max(MAX_WEBHOOK_URL_LENGTH).openapi({
    description:
      "https:// to a public address (http:// and private ones only when WEBHOOK_ALLOW_PRIVATE).",
  }),
  events: z.array(z.enum(SUBSCRIBABLE)).min(1).max(SUBSCRIBABLE.length),
  description: z
    .string()
    .max(500)
    .regex(/^[^\p{Cc}]*$/u, "must not contain control characters"),
};

const CreateBody = z
  .object({ url: Fields.url, events: Fields.events, description: Fields.description.optional() })
  .strict()
  .openapi("CreateWebhook");

const PatchBody = z
  .object({
    url: Fields.url.optional(),
    events: Fields.events.optional(),
    description: Fields.description.nullable().optional(),
  })
  .strict()
  .openapi("UpdateWebhook");

// `webhookId`, not `id`: across the API `{id}` names a workspace.
const HookParam = z.object({
  webhookId: z
    .string()
    .toLowerCase()
    .openapi({ param: { name: "webhookId", in: "path" }, description: "The webhook id." }),
});
const DeliveryParam = HookParam.extend({
  deliveryId: z
    .string()
    .toLowerCase()
    .openapi({ param: { name: "deliveryId", in: "path" }, description: "The delivery id." }),
});

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

/** The API's view of a subscription: never its secret. */
function toApi(w: WebhookRow): z.infer<typeof WebhookSchema> {
  return {
    id: w.id,
    url: w.url,
    events: w.events as z.infer<typeof WebhookSchema>["events"],
    description: w.description,
    failing: w.failingSince !== null,
    failingSince: iso(w.failingSince),
    createdAt: w.createdAt.toISOString(),
    updatedAt: w.updatedAt.toISOString(),
  };
}

function deliveryToApi(v: DeliveryView): z.infer<typeof DeliverySchema> {
  const d = v.delivery;
  return {
    id: d.id,
    eventId: d.eventId,
    eventType: v.eventType,
    workspaceId: d.workspaceId,
    seq: d.seq,
    state: d.state,
    attempts: v.attempts.map((a) => ({
      attempt: a.attempt,
      at: a.at.toISOString(),
      statusCode: a.statusCode,
      latencyMs: a.latencyMs,
      error: a.error,
    })),
    nextAttemptAt: d.state === "pending" ? d.nextAttemptAt.toISOString() : null,
    lastStatusCode: d.lastStatusCode,
    lastError: d.lastError,
    deliveredAt: iso(d.deliveredAt),
    createdAt: d.createdAt.toISOString(),
  };
}

function urlRefused(reason: string): ApiError {
  return new ApiError("VALIDATION_FAILED", `The webhook URL is not allowed: ${reason}.`, {
    fields: [{ path: "url", message: reason }],
    hint: "Use https:// to a public address; WEBHOOK_ALLOW_PRIVATE=true allows http:// and private addresses (development).",
  });
}

const notFound = () => new ApiError("WEBHOOK_NOT_FOUND", "No such webhook.");

export const webhookRoutes = newRouter();

const tags = ["webhooks"];

webhookRoutes.openapi(
  createRoute({
    method: "post",
    middleware: [authenticate("admin")] as const,
    path: "/webhooks",
    tags,
    summary: "Subscribe a receiver to events",
    security,
    request: { body: { content: { "application/json": { schema: CreateBody } }, required: true } },
    responses: {
      201: json(z.object({ webhook: WebhookSchema, secret: Secret }), "Subscribed."),
      ...errorResponses(AUTH_ERRORS, BODY_ERRORS, STORE_ERRORS),
    },
  }),
  async (c) => {
    const result = await createSubscription(c.get("deps"), c.req.valid("json"));
    if (result.kind === "url_refused") throw urlRefused(result.reason);
    return c.json({ webhook: toApi(result.webhook), secret: result.secret }, 201);
  },
);

webhookRoutes.openapi(
  createRoute({
    method: "get",
    middleware: [authenticate("admin")] as const,
    path: "/webhooks",
    tags,
    summary: "List webhooks, newest first",
    security,
    responses: {
      200: json(z.object({ webhooks: z.array(WebhookSchema) }), "Every webhook."),
      ...errorResponses(AUTH_ERRORS, STORE_ERRORS),
    },
  }),
  async (c) => {
    const rows = await listSubscriptions(c.get("deps").db);
    return c.json({ webhooks: rows.map(toApi) }, 200);
  },
);

webhookRoutes.openapi(
  createRoute({
    method: "get",
    middleware: [authenticate("admin")] as const,
    path: "/webhooks/{webhookId}",
    tags,
    summary: "Get a webhook",
    security,
    request: { params: HookParam },
    responses: {
      200: json(z.object({ webhook: WebhookSchema }), "The webhook."),
      ...errorResponses(AUTH_ERRORS, "WEBHOOK_NOT_FOUND", STORE_ERRORS),
    },
  }),
  async (c) => {
    const row = await getSubscription(c.get("deps").db, c.req.valid("param").webhookId);
    if (!row) throw notFound();
    return c.json({ webhook: toApi(row) }, 200);
  },
);

webhookRoutes.openapi(
  createRoute({
    method: "patch",
    middleware: [authenticate("admin")] as const,
    path: "/webhooks/{webhookId}",
    tags,
    summary: "Change a webhook's URL, events or description (later events only)",
    security,
    request: {
      params: HookParam,
      body: { content: { "application/json": { schema: PatchBody } }, required: true },
    },
    responses: {
      200: json(z.object({ webhook: WebhookSchema }), "Changed."),
      ...errorResponses(AUTH_ERRORS, BODY_ERRORS, "WEBHOOK_NOT_FOUND", STORE_ERRORS),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const result = await updateSubscription(c.get("deps"), c.req.valid("param").webhookId, {
      ...(body.url !== undefined && { url: body.url }),
      ...(body.events !== undefined && { events: body.events }),
      ...(body.description !== undefined && { description: body.description }),
    });
    if (result.kind === "url_refused") throw urlRefused(result.reason);
    if (result.kind === "not_found") throw notFound();
    return c.json({ webhook: toApi(result.webhook) }, 200);
  },
);

webhookRoutes.openapi(
  createRoute({
    method: "delete",
    middleware: [authenticate("admin")] as const,
    path: "/webhooks/{webhookId}",
    tags,
    summary: "Delete a webhook and its deliveries",
    security,
    request: { params: HookParam },
    responses: {
      204: { description: "Deleted." },
      ...errorResponses(AUTH_ERRORS, "WEBHOOK_NOT_FOUND", STORE_ERRORS),
    },
  }),
  async (c) => {
    if (!(await deleteSubscription(c.get("deps").db, c.req.valid("param").webhookId)))
      throw notFound();
    return c.body(null, 204);
  },
);

webhookRoutes.openapi(
  createRoute({
    method: "post",
    middleware: [authenticate("admin")] as const,
    path: "/webhooks/{webhookId}/rotate-secret",
    tags,
    summary: "Replace the signing secret (shown once)",
    security,
    request: { params: HookParam },
    responses: {
      200: json(z.object({ webhook: WebhookSchema, secret: Secret }), "The new secret."),
      ...errorResponses(AUTH_ERRORS, "WEBHOOK_NOT_FOUND", STORE_ERRORS),
    },
  }),
  async (c) => {
    const rotated = await rotateSecret(c.get("deps"), c.req.valid("param").webhookId);
    if (!rotated) throw notFound();
    return c.json({ webhook: toApi(rotated.webhook), secret: rotated.secret }, 200);
  },
);

webhookRoutes.openapi(
  createRoute({
    method: "get",
    middleware: [authenticate("admin")] as const,
    path: "/webhooks/{webhookId}/deliveries",
    tags,
    summary: "A webhook's deliveries, newest event first, with every attempt",
    security,
    request: {
      params: HookParam,
      query: z.object({
        limit: z.coerce.number().int().min(1).max(200).default(50),
        cursor: z.string().max(200).optional(),
      }),
    },
    responses: {
      200: json(
        z.object({ deliveries: z.array(DeliverySchema), nextCursor: z.string().nullable() }),
        "A page of deliveries.",
      ),
      ...errorResponses(AUTH_ERRORS, "VALIDATION_FAILED", "WEBHOOK_NOT_FOUND", STORE_ERRORS),
    },
  }),
  async (c) => {
    const db = c.get("deps").db;
    const q = c.req.valid("query");
    let cursor: { seq: string } | undefined;
    if (q.cursor !== undefined) {
      const decoded = decodeDeliveryCursor(q.cursor);
      if (!decoded) {
        throw new ApiError("VALIDATION_FAILED", "The cursor is not valid.", {
          fields: [{ path: "cursor", message: "not a cursor this API issued" }],
        });
      }
      cursor = decoded;
    }
    const hook = await getSubscription(db, c.req.valid("param").webhookId);
    if (!hook) throw notFound();
    const page = await listDeliveries(db, hook.id, { limit: q.limit, ...(cursor && { cursor }) });
    return c.json({ deliveries: page.items.map(deliveryToApi), nextCursor: page.nextCursor }, 200);
  },
);

webhookRoutes.openapi(
  createRoute({
    method: "post",
    middleware: [authenticate("admin")] as const,
    path: "/webhooks/{webhookId}/deliveries/{deliveryId}/retry",
    tags,
    summary: "Send a delivery again now, with a fresh retry period",
    security,
    request: { params: DeliveryParam },
    responses: {
      202: json(
        z.object({ delivery: z.object({ id: z.uuid(), state: z.enum(WEBHOOK_DELIVERY_STATES) }) }),
        "Due again, and tried once by this request (within WEBHOOK_INLINE_SECONDS): `state` " +
          "says how that went; what is still pending the sweep retries.",
      ),
      ...errorResponses(
        AUTH_ERRORS,
        "WEBHOOK_NOT_FOUND",
        "WEBHOOK_DELIVERY_NOT_FOUND",
        STORE_ERRORS,
      ),
    },
  }),
  async (c) => {
    const deps = c.get("deps");
    const p = c.req.valid("param");
    const hook = await getSubscription(deps.db, p.webhookId);
    if (!hook) throw notFound();
    const row = await retryDelivery(deps.db, hook.id, p.deliveryId);
    if (!row) throw new ApiError("WEBHOOK_DELIVERY_NOT_FOUND", "No such delivery of this webhook.");
    // Sent now rather than at the next sweep: whoever asks for a retry is watching for it.
    await deliverPending(deps, {
      deadline: within(deps.deadline, deps.config.webhooks.inlineMs),
      workspaceIds: [row.workspaceId],
    });
    const state = (await deliveryState(deps.db, row.id)) ?? row.state;
    return c.json({ delivery: { id: row.id, state } }, 202);
  },
);
