import type { WorkspaceEventRow } from "../db/schema.js";

/**
 * The event types a webhook can subscribe to. Each is a row of `workspace_events` (the outbox),
 * written in the transaction of the change it reports:
 * - `workspace.created`, `workspace.status_changed`, `workspace.removed`: a status change (the
 *   first one, any later one, the move to `removed`), with `from`, `to`, `reason` and `actor`;
 * - `plugin.installed`, `plugin.failed`, `plugin.uninstalled`: a plugin operation's outcome;
 * - `command.finished`: a command's outcome (written by the commands API).
 */
export const EVENT_TYPES = [
  "workspace.created",
  "workspace.status_changed",
  "workspace.removed",
  "plugin.installed",
  "plugin.failed",
  "plugin.uninstalled",
  "command.finished",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** What a subscription lists: event types, or `*` for every type (including later ones). */
export const SUBSCRIBABLE = [...EVENT_TYPES, "*"] as const;
export type Subscribable = (typeof SUBSCRIBABLE)[number];

/**
 * The body a receiver gets, in the Standard Webhooks shape (`type`, `timestamp`, `data`;
 * github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md). The
 * `webhook-id` header is the event's id; `data.seq` orders a workspace's events.
 */
export interface WebhookPayload {
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

/** The payload of one logged event: the same bytes on every attempt but the signature's time. */
export function payloadOf(event: WorkspaceEventRow): WebhookPayload {
  const status =
    event.to === null
      ? {}
      : { from: event.from, to: event.to, reason: event.reason, actor: event.actor };
  return {
    type: event.type,
    timestamp: event.at.toISOString(),
    data: {
      ...event.data,
      ...status,
      ...(event.to === null && { actor: event.actor }),
      workspaceId: event.workspaceId,
      eventId: event.id,
      seq: event.seq,
    },
  };
}
