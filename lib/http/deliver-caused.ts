import type { MiddlewareHandler } from "hono";
import { within } from "../deadline.js";
import { safeError } from "../redact.js";
import { deliverPending } from "../webhooks/deliver.js";
import type { AppEnv } from "./context.js";

const WORKSPACE_PATH =
  /^\/workspaces\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:\/|$)/i;
const READS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * After a request that may have changed something, delivers the webhooks its change caused,
 * before the answer leaves: a subscriber hears of it within the request, not at the next sweep.
 * Bounded by `WEBHOOK_INLINE_SECONDS` (and the request's deadline), so a slow receiver delays an
 * answer by at most that; only deliveries never attempted, of the workspace the path or the
 * token names when one does — a receiver's backlog and its retries are the sweep's. Whatever is
 * left (cut short, failed) the sweep's `webhooks` pass retries. Never fails the request.
 */
export const deliverCaused = (): MiddlewareHandler<AppEnv> =>
  async function deliverCaused(c, next) {
    await next();
    if (READS.has(c.req.method)) return;
    const deps = c.get("deps");
    const budget = deps.config.webhooks.inlineMs;
    if (budget <= 0) return;
    // Only after an authenticated request: an anonymous one changed nothing, and must not buy a
    // database query per request.
    const caller = c.get("caller");
    if (caller === undefined) return;
    const fromPath = WORKSPACE_PATH.exec(c.req.path)?.[1]?.toLowerCase();
    const workspaceId = fromPath ?? (caller.kind === "workspace" ? caller.workspaceId : undefined);
    try {
      await deliverPending(deps, {
        deadline: within(deps.deadline, budget),
        freshOnly: true,
        ...(workspaceId !== undefined && { workspaceIds: [workspaceId] }),
      });
    } catch (err) {
      deps.log.warn("webhooks not delivered after the request; the sweep retries", {
        requestId: c.get("requestId"),
        error: safeError(err),
      });
    }
  };
